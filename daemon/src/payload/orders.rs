//! Which parts of a request are orders, and their fields, per format (issue 17).
//!
//! An *element* is one set of order fields: a form (Binance), a JSON object, or one leg of a
//! Binance order list. An element is an order when it carries an order field (side, type,
//! quantity, quote quantity or price, by the exchange's names; the symbol alone does not make
//! one: queries and cancels carry it too). Every element of a batch or a list field is found,
//! at any depth: a JSON object inherits the fields of the objects around it (KuCoin's
//! `{"symbol":..,"orderList":[{..},{..}]}`), and each object with an order field of its own is
//! one order. Field names are matched ignoring case, as duplicates are (a server may read them
//! either way).
//!
//! - **binance**: the signed string has no path, so any order field makes the request an
//!   order, whatever the endpoint: `symbol`, `side`, `type`, `quantity`, `quoteOrderQty`,
//!   `price`; the legs of the order-list endpoints (`above*`/`below*` of an OCO, `working*`,
//!   `pending*`, `pendingAbove*`, `pendingBelow*` of OTO/OTOCO), each judged as an order; and
//!   `batchOrders`, a JSON array of orders in one form value (USDⓈ-M futures).
//! - **bybit**: the JSON body or the query (the method is not signed): `symbol`,
//!   `side`, `orderType`, `qty`, `price`; batches are the `request` list.
//! - **okx**: the JSON body, an object or a batch array: `instId`, `side`, `ordType`, `sz`,
//!   `px`.
//! - **kucoin**: the JSON body (and a non-GET query): `symbol`, `side`, `type`, `size`,
//!   `funds` (quote), `price`; batches are `orderList`.
//! - **bitget**: the JSON body (and a non-GET query), spot v2 `place-order` and
//!   `batch-orders`: `symbol`, `side`, `orderType`, `size`, `price`; batches are `orderList`.
//!
//! Units. A quantity field can be in the base or the quote currency: Bybit's spot market
//! buy (`qty` in the quote coin unless `marketUnit` is `baseCoin`), OKX's spot market buy
//! (`sz` in the quote currency unless `tgtCcy` is `base_ccy`), Bitget's market buy (`size` in
//! the quote coin). Where the fields settle it, the value is a base quantity or a quote
//! quantity; where they do not, it is judged as both, which refuses whatever either reading
//! would refuse.
//!
//! A price counts for the notional only for the order types that fill at that price or
//! better (limit types): exchanges ignore a price sent with a market order, so a market order
//! with `price=0.01` would otherwise pass any notional limit.

use super::fold;
use super::json::Value;
use super::{Field, Format, OrderFields};

/// The fields of one element, by folded name, in the order found.
#[derive(Debug, Clone, Default)]
struct Element {
    fields: Vec<(String, Field)>,
}

impl Element {
    fn set(&mut self, folded: String, field: Field) {
        match self.fields.iter_mut().find(|(name, _)| *name == folded) {
            Some(slot) => slot.1 = field,
            None => self.fields.push((folded, field)),
        }
    }

    fn get(&self, folded: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|(name, _)| name == folded)
            .map(|(_, field)| field)
    }

    /// The field's value, folded, for deciding units and types (never for the rules).
    fn folded(&self, folded: &str) -> Option<String> {
        self.get(folded)?.value.as_deref().map(fold)
    }
}

/// The names a format's orders are spelled with, folded.
struct Names {
    symbol: &'static str,
    side: &'static str,
    order_type: &'static str,
    quantity: &'static str,
    price: &'static str,
    quote: Option<&'static str>,
    /// Fields read only to decide a quantity's unit.
    unit_fields: &'static [&'static str],
}

fn names(format: Format) -> Names {
    match format {
        Format::Bybit => Names {
            symbol: "symbol",
            side: "side",
            order_type: "ordertype",
            quantity: "qty",
            price: "price",
            quote: None,
            unit_fields: &["category", "marketunit"],
        },
        Format::Okx => Names {
            symbol: "instid",
            side: "side",
            order_type: "ordtype",
            quantity: "sz",
            price: "px",
            quote: None,
            unit_fields: &["tgtccy", "tdmode"],
        },
        Format::Kucoin => Names {
            symbol: "symbol",
            side: "side",
            order_type: "type",
            quantity: "size",
            price: "price",
            quote: Some("funds"),
            unit_fields: &[],
        },
        Format::Bitget => Names {
            symbol: "symbol",
            side: "side",
            order_type: "ordertype",
            quantity: "size",
            price: "price",
            quote: None,
            unit_fields: &[],
        },
        // Binance, and (unused) the formats that show no order.
        _ => Names {
            symbol: "symbol",
            side: "side",
            order_type: "type",
            quantity: "quantity",
            price: "price",
            quote: Some("quoteorderqty"),
            unit_fields: &[],
        },
    }
}

impl Names {
    fn is_order_field(&self, folded: &str) -> bool {
        folded == self.side
            || folded == self.order_type
            || folded == self.quantity
            || folded == self.price
            || self.quote == Some(folded)
    }

    fn is_captured(&self, folded: &str) -> bool {
        folded == self.symbol || self.is_order_field(folded) || self.unit_fields.contains(&folded)
    }
}

/// The orders in a JSON body (or a Binance `batchOrders` array), each object with an order
/// field of its own being one, inheriting the captured fields of the objects around it.
pub(super) fn from_json(body: &Value, format: Format) -> Vec<OrderFields> {
    let names = names(format);
    let mut elements = Vec::new();
    collect(body, &names, &Element::default(), &mut elements);
    elements
        .iter()
        .map(|element| to_order(element, format, &names))
        .collect()
}

fn collect(value: &Value, names: &Names, inherited: &Element, out: &mut Vec<Element>) {
    match value {
        Value::Object(members) => {
            let mut here = inherited.clone();
            let mut is_order = false;
            for (key, value) in members {
                let folded = fold(key);
                if names.is_captured(&folded) {
                    is_order |= names.is_order_field(&folded);
                    here.set(
                        folded,
                        Field {
                            name: key.clone(),
                            value: value.scalar_text(),
                        },
                    );
                }
            }
            if is_order {
                out.push(here.clone());
            }
            for (_, value) in members {
                collect(value, names, &here, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(item, names, inherited, out);
            }
        }
        _ => {}
    }
}

/// The orders in form pairs (a Binance payload, or the query of a non-GET request of the
/// other formats): `(decoded name, decoded value)`.
pub(super) fn from_form(pairs: &[(String, String)], format: Format) -> Vec<OrderFields> {
    let names = names(format);
    let mut top = Element::default();
    let mut is_order = false;
    for (name, value) in pairs {
        let folded = fold(name);
        if names.is_captured(&folded) {
            is_order |= names.is_order_field(&folded);
            top.set(
                folded,
                Field {
                    name: name.clone(),
                    value: Some(value.clone()),
                },
            );
        }
    }
    let mut elements = Vec::new();
    if format == Format::Binance {
        let legs = binance_legs(pairs, &top);
        // An OCO's `side` and `quantity` belong to its two legs, judged there.
        let shared = legs
            .iter()
            .any(|(prefix, _)| matches!(*prefix, "above" | "below"));
        if is_order && !shared {
            elements.push(top.clone());
        }
        // Likewise OTOCO's `pendingSide` and `pendingQuantity` belong to its pending legs.
        let pending_shared = legs
            .iter()
            .any(|(prefix, _)| matches!(*prefix, "pendingabove" | "pendingbelow"));
        elements.extend(
            legs.into_iter()
                .filter(|(prefix, _)| !(pending_shared && *prefix == "pending"))
                .map(|(_, leg)| leg),
        );
    } else if is_order {
        elements.push(top);
    }
    elements
        .iter()
        .map(|element| to_order(element, format, &names))
        .collect()
}

/// The legs of Binance's order lists (spot `POST /api/v3/orderList/oco`, `/oto`, `/otoco`):
/// each `prefix + Side/Type/Quantity/Price`, present when its side, quantity or price is
/// (a futures order's `workingType` alone is not a leg). OCO legs take the list's `side` and
/// `quantity`; OTOCO's pendingAbove/pendingBelow take `pendingSide` and `pendingQuantity`.
fn binance_legs(pairs: &[(String, String)], top: &Element) -> Vec<(&'static str, Element)> {
    const LEGS: [(&str, &str); 6] = [
        ("above", ""),
        ("below", ""),
        ("working", ""),
        ("pending", ""),
        ("pendingabove", "pending"),
        ("pendingbelow", "pending"),
    ];
    let field = |folded: &str| {
        pairs
            .iter()
            .find(|(name, _)| fold(name) == folded)
            .map(|(name, value)| Field {
                name: name.clone(),
                value: Some(value.clone()),
            })
    };
    let mut legs = Vec::new();
    for (prefix, parent) in LEGS {
        let own = |suffix: &str| field(&format!("{prefix}{suffix}"));
        let (side, kind, quantity, price) =
            (own("side"), own("type"), own("quantity"), own("price"));
        if side.is_none() && quantity.is_none() && price.is_none() {
            continue;
        }
        let inherited = |suffix: &str| {
            if parent.is_empty() {
                top.get(suffix).cloned()
            } else {
                field(&format!("{parent}{suffix}"))
            }
        };
        let mut leg = Element::default();
        if let Some(symbol) = top.get("symbol") {
            leg.set("symbol".into(), symbol.clone());
        }
        let pick = |own: Option<Field>, suffix: &str| {
            own.or_else(|| {
                if matches!(suffix, "side" | "quantity") {
                    inherited(suffix)
                } else {
                    None
                }
            })
        };
        for (name, value) in [
            ("side", pick(side, "side")),
            ("type", kind),
            ("quantity", pick(quantity, "quantity")),
            ("price", price),
        ] {
            if let Some(value) = value {
                leg.set(name.into(), value);
            }
        }
        legs.push((prefix, leg));
    }
    legs
}

/// In which currency a quantity field counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Base,
    Quote,
    /// The fields do not settle it: judged both ways.
    Either,
}

fn to_order(element: &Element, format: Format, names: &Names) -> OrderFields {
    let order_type = element.folded(names.order_type);
    let side = element.folded(names.side);
    let is = |value: &Option<String>, expected: &[&str]| {
        value.as_deref().is_some_and(|v| expected.contains(&v))
    };
    let limit_types: &[&str] = match format {
        Format::Binance => &[
            "limit",
            "limit_maker",
            "stop_loss_limit",
            "take_profit_limit",
        ],
        Format::Okx => &["limit", "post_only", "fok", "ioc"],
        _ => &["limit"],
    };
    let is_limit = is(&order_type, limit_types);
    let unit = match format {
        Format::Bybit => {
            let market_unit = element.folded("marketunit");
            let spot = is(&element.folded("category"), &["spot"]);
            match market_unit.as_deref() {
                Some("basecoin") => Unit::Base,
                Some("quotecoin") if is_limit => Unit::Either,
                Some("quotecoin") => Unit::Quote,
                Some(_) => Unit::Either,
                None if is_limit => Unit::Base,
                None if !spot && element.get("category").is_some() => Unit::Base,
                None if spot && is(&order_type, &["market"]) && is(&side, &["sell"]) => Unit::Base,
                None if spot && is(&order_type, &["market"]) && is(&side, &["buy"]) => Unit::Quote,
                None => Unit::Either,
            }
        }
        Format::Okx => match element.folded("tgtccy").as_deref() {
            _ if is_limit => Unit::Base,
            Some("base_ccy") => Unit::Base,
            Some("quote_ccy") if is(&order_type, &["market"]) => Unit::Quote,
            Some(_) => Unit::Either,
            None if is(&order_type, &["market"]) && is(&side, &["sell"]) => Unit::Base,
            None if is(&order_type, &["market"])
                && is(&side, &["buy"])
                && is(&element.folded("tdmode"), &["cash"]) =>
            {
                Unit::Quote
            }
            None => Unit::Either,
        },
        Format::Bitget => {
            if is_limit || (is(&order_type, &["market"]) && is(&side, &["sell"])) {
                Unit::Base
            } else if is(&order_type, &["market"]) && is(&side, &["buy"]) {
                Unit::Quote
            } else {
                Unit::Either
            }
        }
        _ => Unit::Base,
    };
    let quantity_field = element.get(names.quantity).cloned();
    let (quantity, quote_from_quantity) = match unit {
        Unit::Base => (quantity_field, None),
        Unit::Quote => (None, quantity_field),
        Unit::Either => (quantity_field.clone(), quantity_field),
    };
    let quote_quantity = names
        .quote
        .and_then(|quote| element.get(quote).cloned())
        .or(quote_from_quantity);
    OrderFields {
        symbol: element.get(names.symbol).cloned(),
        side: element.get(names.side).cloned(),
        order_type: element.get(names.order_type).cloned(),
        quantity,
        price: element.get(names.price).cloned(),
        quote_quantity,
        price_binds: is_limit,
    }
}
