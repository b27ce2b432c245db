//! keywardd.toml(5): every setting of the config file, documented once. The man page is
//! rendered from [`SETTINGS`], and config.rs's tests hold the table to the parser: each
//! example value parses in its table, and the names here are exactly the fields the parser
//! accepts. A setting added to the parser without a line here fails those tests.

/// One setting: the TOML table it belongs in, its name, an example value (TOML) and what it
/// does.
#[derive(Debug)]
pub(crate) struct Setting {
    pub(crate) table: Table,
    pub(crate) name: &'static str,
    pub(crate) example: &'static str,
    pub(crate) doc: &'static str,
}

/// The tables of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `[daemon]`: read at start only.
    Daemon,
    /// `[defaults]` and every `[keys."NAME"]`: the policy, reloaded on SIGHUP.
    Policy,
}

use Table::{Daemon, Policy};

pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        table: Daemon,
        name: "socket",
        example: "\"/run/keyward/keyward.sock\"",
        doc: "The socket to listen on (--socket overrides it). Not used when the socket is passed \
              by systemd (keywardd.socket), whose ListenStream= decides.",
    },
    Setting {
        table: Daemon,
        name: "socket_group",
        example: "\"keyward\"",
        doc: "Group name or gid: the socket becomes 0660 and its directory 0750, owned by this \
              group, so its members may connect. keywardd must be a member of the group (or root) to \
              give the files to it. Not used when socket-activated.",
    },
    Setting {
        table: Daemon,
        name: "keystore",
        example: "\"/var/lib/keyward\"",
        doc: "The keystore directory (--keystore overrides it). Default: \
              $XDG_DATA_HOME/keyward, else ~/.local/share/keyward.",
    },
    Setting {
        table: Daemon,
        name: "audit_log",
        example: "\"/var/log/keyward/audit.jsonl\"",
        doc: "Append one JSON line per decision (who, which key, payload SHA-256, decision, \
              reason) to this file. Absent: no audit log.",
    },
    Setting {
        table: Daemon,
        name: "audit_payloads",
        example: "false",
        doc: "Also record each payload in the audit log (never a key or a secret).",
    },
    Setting {
        table: Daemon,
        name: "audit_required",
        example: "false",
        doc: "Release a signature only once its audit record is written and flushed to the disk \
              (fdatasync); while the log cannot be written (a full or read-only disk, a full \
              queue, a disk that does not answer within audit_timeout_ms), signing is refused \
              with Unavailable. Without it, signing never waits for the disk: records that \
              cannot be written, or find the writer's queue (4096 records, 16 MiB) full, are counted \
              and lost. Needs audit_log.",
    },
    Setting {
        table: Daemon,
        name: "audit_timeout_ms",
        example: "1000",
        doc: "With audit_required: the longest a signature waits for its audit record before it \
              is refused (1 to 60000). Default: 1000.",
    },
    Setting {
        table: Daemon,
        name: "admin_uids",
        example: "[0]",
        doc: "Users (names or uids) who may administer (init, unlock, lock, import, generate, \
              remove, passwd) besides the daemon's own uid. Default: [0] (root); [] turns \
              root off.",
    },
    Setting {
        table: Daemon,
        name: "admin_gids",
        example: "[]",
        doc: "Groups (names or gids) whose members may administer.",
    },
    Setting {
        table: Daemon,
        name: "status_uids",
        example: "[\"prometheus\"]",
        doc: "Users (names or uids) with the read-only status right, for monitoring: they may \
              ask status and stats (keyward status, keyward stats), and nothing else, \
              without being an admin or holding a key.",
    },
    Setting {
        table: Daemon,
        name: "status_gids",
        example: "[]",
        doc: "Groups (names or gids) whose members have the read-only status right.",
    },
    Setting {
        table: Daemon,
        name: "idle_lock_secs",
        example: "0",
        doc: "Lock after this many seconds without a signature; 0: never (--idle-lock \
              overrides it).",
    },
    Setting {
        table: Daemon,
        name: "max_unlock_secs",
        example: "0",
        doc: "Lock this many seconds after unlock, however busy; 0: never (--max-unlock \
              overrides it).",
    },
    Setting {
        table: Daemon,
        name: "max_connections",
        example: "1024",
        doc: "Connections served at once, all users together (1 to 16384). A connection over \
              a limit is accepted, answered Unavailable and closed at once: nobody waits in \
              the listen backlog. Each connection has a thread whose 128 KiB stack counts \
              against LimitMEMLOCK= (docs/SECURITY.md, \"Limits\").",
    },
    Setting {
        table: Daemon,
        name: "max_connections_per_uid",
        example: "256",
        doc: "Connections one user may hold at once, so that one user can never take the \
              others' places (1 to max_connections; default 256, or max_connections if \
              smaller). Admins are not held to it: they could lock anyway.",
    },
    Setting {
        table: Daemon,
        name: "admin_connections",
        example: "16",
        doc: "Places kept for admins (the daemon's uid, admin_uids, admin_gids) beyond \
              max_connections, so an operator can always lock, whoever holds the other \
              places; one admin uid may take half of them (1 to 256).",
    },
    Setting {
        table: Daemon,
        name: "hello_timeout_secs",
        example: "10",
        doc: "A connection whose first request has not arrived whole this many seconds after \
              it was accepted is answered Unavailable and closed (1 to 3600).",
    },
    Setting {
        table: Daemon,
        name: "frame_timeout_secs",
        example: "10",
        doc: "Once a request's first byte has arrived, the rest must follow within this many \
              seconds (a client trickling bytes is closed); a response must be taken by the \
              client within as long (1 to 3600).",
    },
    Setting {
        table: Daemon,
        name: "idle_timeout_secs",
        example: "600",
        doc: "A connection with no request for this many seconds is answered Unavailable and \
              closed; a client connects again (1 to 604800).",
    },
    Setting {
        table: Daemon,
        name: "frame_budget_bytes",
        example: "16777216",
        doc: "Bytes of requests larger than 4 KiB that may be arriving at once, all \
              connections together; a request that does not fit is answered Unavailable and \
              its connection closed. Requests up to 4 KiB (every signature request) are not \
              counted (65536 to 1073741824, and at least --max-frame).",
    },
    Setting {
        table: Policy,
        name: "allow_uids",
        example: "[\"bot-binance\", 1001]",
        doc: "Users (names or uids) who may sign with the key. The daemon's own uid always may.",
    },
    Setting {
        table: Policy,
        name: "allow_gids",
        example: "[\"bots\"]",
        doc: "Groups (names or gids) whose members may sign with the key, supplementary groups \
              included.",
    },
    Setting {
        table: Policy,
        name: "rate_per_sec",
        example: "20",
        doc: "Token-bucket rate limit for the key, in signatures per second (from 1/86400 to \
              1000000). Absent: no limit.",
    },
    Setting {
        table: Policy,
        name: "burst",
        example: "40",
        doc: "The bucket's size: signatures allowed at once. Needs rate_per_sec; default: one \
              second's worth.",
    },
    Setting {
        table: Policy,
        name: "timestamp_window_ms",
        example: "5000",
        doc: "The payload must carry timestamp= within this many milliseconds of now \
              (milliseconds or microseconds since the epoch), so signatures cannot be \
              stockpiled. Absent: not checked.",
    },
    Setting {
        table: Policy,
        name: "deny_params",
        example: "[\"address\"]",
        doc: "Refuse payloads with any of these query or form parameters (case-insensitive); \
              \"address\" refuses withdrawals.",
    },
    Setting {
        table: Policy,
        name: "max_payload_bytes",
        example: "16384",
        doc: "Refuse payloads longer than this.",
    },
    Setting {
        table: Policy,
        name: "format",
        example: "\"binance\"",
        doc: "The exchange format the key's payloads are parsed in before any payload rule \
              judges them: binance, bybit, okx, kucoin, bitget, kraken, coinbase-jwt or raw \
              (no parse, no rules). Overrides the format stored at import or generate. A \
              payload that does not parse is refused (docs/POLICY.md).",
    },
    Setting {
        table: Policy,
        name: "allow_paths",
        example: "[\"/api/v5/trade/\"]",
        doc: "Only these request paths may be signed (exact, or a whole-segment prefix when \
              the entry ends in /); for formats whose signed string holds the path.",
    },
    Setting {
        table: Policy,
        name: "deny_paths",
        example: "[\"/api/v5/asset/withdrawal\"]",
        doc: "Refuse these request paths (prefixes), e.g. withdrawal and transfer endpoints.",
    },
    Setting {
        table: Policy,
        name: "max_recv_window_ms",
        example: "5000",
        doc: "Upper bound on Binance's recvWindow and Bybit's recv_window.",
    },
    Setting {
        table: Policy,
        name: "max_token_lifetime_secs",
        example: "120",
        doc: "coinbase-jwt: upper bound on exp - nbf of a signed token.",
    },
    Setting {
        table: Policy,
        name: "allow_symbols",
        example: "[\"BTCUSDT\"]",
        doc: "Orders only for these symbols, in the exchange's own spelling.",
    },
    Setting {
        table: Policy,
        name: "allow_sides",
        example: "[\"BUY\", \"SELL\"]",
        doc: "Orders only with these sides, as the exchange spells them.",
    },
    Setting {
        table: Policy,
        name: "allow_order_types",
        example: "[\"LIMIT\", \"LIMIT_MAKER\"]",
        doc: "Orders only of these types, as the exchange spells them.",
    },
    Setting {
        table: Policy,
        name: "max_quantity",
        example: "\"0.5\"",
        doc: "Largest order quantity, as a decimal string (compared exactly).",
    },
    Setting {
        table: Policy,
        name: "max_notional",
        example: "\"1000\"",
        doc: "Largest price x quantity (or quote quantity) per order, as a decimal string; \
              a market order whose size in quote currency cannot be known is refused.",
    },
    Setting {
        table: Policy,
        name: "orders_per_minute",
        example: "30",
        doc: "Orders per minute for this key (a batch counts each order), separate from \
              rate_per_sec.",
    },
];

/// keywardd.toml(5) as roff.
pub(crate) fn man_page(version: &str) -> String {
    use clap_mangen::roff::{Roff, bold, italic, roman};

    let mut roff = Roff::default();
    roff.control(
        "TH",
        ["keywardd.toml", "5", "", &format!("keyward {version}")],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "keywardd.toml - keywardd's configuration: who may sign with which key",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([
        bold("/etc/keyward/keywardd.toml"),
        roman(" (the system service)"),
    ]);
    roff.control("br", []);
    roff.text([
        bold("$XDG_CONFIG_HOME/keyward/keywardd.toml"),
        roman(", else "),
        bold("~/.config/keyward/keywardd.toml"),
        roman(" (a session's keywardd)"),
    ]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "A TOML file read at start (keywardd --config PATH names another). An absent default \
         file means built-in defaults; a file named with --config must exist. Every mistake \
         (an unknown setting, a bad value, a user or group that does not exist) stops keywardd \
         with one line naming it. Command-line flags override the [daemon] table.",
    )]);
    roff.control("PP", []);
    roff.text([roman(
        "SIGHUP (systemctl reload keywardd) re-reads [defaults] and every [keys.\"NAME\"]; a \
         broken file is refused and the old policy stays in force. [daemon] is read at start \
         only.",
    )]);
    roff.control("SH", ["[daemon]"]);
    settings(&mut roff, Daemon);
    roff.control("SH", ["[defaults] AND [keys.NAME]"]);
    roff.text([roman(
        "The policy: [keys.\"NAME\"] applies to the key NAME, [defaults] to keys without a \
         table of their own. Each accepts:",
    )]);
    settings(&mut roff, Policy);
    roff.control("SH", ["EXAMPLE"]);
    roff.control("nf", []);
    roff.control("RS", ["4"]);
    for line in example().lines() {
        roff.text([roman(line)]);
    }
    roff.control("RE", []);
    roff.control("fi", []);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        italic("keywardd"),
        roman("(8), "),
        italic("keyward"),
        roman("(1); /usr/share/doc/keyward/OPERATIONS.md"),
    ]);
    roff.to_roff()
}

fn settings(roff: &mut clap_mangen::roff::Roff, table: Table) {
    use clap_mangen::roff::{bold, roman};
    for setting in SETTINGS.iter().filter(|setting| setting.table == table) {
        roff.control("TP", []);
        roff.text([bold(format!("{} = {}", setting.name, setting.example))]);
        roff.text([roman(setting.doc)]);
    }
}

/// A whole file that sets everything, from the examples above.
pub(crate) fn example() -> String {
    let mut text = String::from("[daemon]\n");
    for setting in SETTINGS.iter().filter(|setting| setting.table == Daemon) {
        text.push_str(&format!("{} = {}\n", setting.name, setting.example));
    }
    text.push_str("\n[defaults]\nallow_uids = []\n\n[keys.\"binance-main\"]\n");
    // Path rules and the JWT lifetime cannot be judged on binance payloads (their signed
    // string holds no path): those settings are shown on keys of formats that can.
    let elsewhere: [(&str, &str, &[&str]); 2] = [
        ("okx-main", "okx", &["allow_paths", "deny_paths"]),
        (
            "coinbase-main",
            "coinbase-jwt",
            &["max_token_lifetime_secs"],
        ),
    ];
    let shown_elsewhere = |name: &str| elsewhere.iter().any(|(_, _, names)| names.contains(&name));
    for setting in SETTINGS.iter().filter(|setting| setting.table == Policy) {
        if !shown_elsewhere(setting.name) {
            text.push_str(&format!("{} = {}\n", setting.name, setting.example));
        }
    }
    for (key, format, names) in elsewhere {
        text.push_str(&format!("\n[keys.\"{key}\"]\nformat = \"{format}\"\n"));
        for setting in SETTINGS
            .iter()
            .filter(|setting| names.contains(&setting.name))
        {
            text.push_str(&format!("{} = {}\n", setting.name, setting.example));
        }
    }
    text
}
