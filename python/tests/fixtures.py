"""Where the repository's golden protocol frames are."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fixture_dir() -> Path:
    """protocol/testdata/ (their new home), else tests/fixtures/protocol/."""
    for candidate in (REPO / "protocol" / "testdata", REPO / "tests" / "fixtures" / "protocol"):
        if any(candidate.glob("*.bin")):
            return candidate
    raise FileNotFoundError(
        "no golden frames in protocol/testdata/ or tests/fixtures/protocol/ under " + str(REPO)
    )
