//! Property test: on random customers and random rule trees, the in-memory engine
//! (`domain::engine::TenantIndex`) selects exactly the customers the reference
//! evaluator accepts, through upserts that replace records, removals, slot reuse and
//! enough churn to rebuild its event base and dictionaries. Pure in-memory.
//!
//! Trees come in two kinds: valid ones (what `rules::validate` accepts, the contract)
//! and wild ones (any operator on any field, values of any JSON type), because the
//! engine claims the reference's answer for those too.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use mkt_segment_engine::{BehaviourEvent, CustomerRecord, Scores, TenantIndex};
use mkt_segment_rules::evaluate::evaluate;
use mkt_segment_rules::fields::{self, FieldType};
use mkt_segment_rules::{
    Condition, Group, Logic, OPERATORS, PropertyFilter, operators_for, validate,
};
use serde_json::{Value, json};
use uuid::Uuid;

const TEXT_FIELDS: [&str; 11] = [
    "name",
    "email",
    "phone",
    "city",
    "state",
    "country",
    "zip_code",
    "loyalty_tier",
    "segment",
    "clv_tier",
    "churn_risk",
];
const OTHER_FIELDS: [&str; 19] = [
    "orders_count",
    "total_spent",
    "avg_order_value",
    "last_order_days_ago",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "clv",
    "emails_opened",
    "emails_clicked",
    "churn_probability",
    "created_at",
    "first_order_at",
    "last_order_at",
    "consent_email",
    "consent_sms",
    "consent_push",
    "unsubscribed",
    "event",
];
const TRAITS: [&str; 7] = [
    "attributes.vip",
    "attributes.level",
    "attributes.plan",
    "attributes.since",
    "attributes.misc",
    "attributes.rare",
    "attributes.nobody_has_this",
];
const WORDS: [&str; 16] = [
    "CA",
    "ca",
    "Ca",
    "TX",
    "ny",
    "NY",
    "gold",
    "Gold",
    "silver",
    "San Francisco",
    "san jose",
    "Zürich",
    "İstanbul",
    "",
    "5",
    "true",
];
const NEEDLES: [&str; 12] = [
    "c", "A", "san", "Jose", "x", "ü", "2026", "T00", "5", "e", "user1", ".COM",
];
const COMPARISONS: [&str; 13] = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "greater_than",
    "greater_than_or_equals",
    "less_than",
    "less_than_or_equals",
    "between",
    "before",
    "after",
    "newer_than_days",
    "older_than_days",
];
const EVENT_TYPES: [&str; 4] = ["add_to_cart", "page_view", "purchase", "Add_To_Cart"];
const TOTALS: [i64; 6] = [0, 100, 250, 1000, 4000, -50];

struct Gen {
    rng: fastrand::Rng,
    now: DateTime<Utc>,
    /// Instants the data uses, so rule values hit them exactly.
    instants: Vec<DateTime<Utc>>,
    /// Instants stored in each instant field (and the `since` trait), per field.
    by_field: BTreeMap<&'static str, Vec<DateTime<Utc>>>,
    /// Draw conditions on instants only, with any comparison (the edges phase).
    focus: bool,
}

impl Gen {
    fn pick<'a, T>(&mut self, options: &'a [T]) -> &'a T {
        &options[self.rng.usize(..options.len())]
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(..100) < percent
    }

    fn instant(&mut self) -> DateTime<Utc> {
        let at = match self.rng.u8(..10) {
            // Exactly N days before (or after) now, give or take a microsecond: the
            // edges of windows and of whole days.
            0..=3 => {
                self.now - Duration::days(self.rng.i64(-3..40))
                    + Duration::microseconds(self.rng.i64(-1..=1))
            }
            4 | 5 if !self.instants.is_empty() => {
                self.instants[self.rng.usize(..self.instants.len())]
            }
            _ => {
                self.now - Duration::seconds(self.rng.i64(-3 * 86_400..400 * 86_400))
                    + Duration::nanoseconds(self.rng.i64(0..1_000_000_000))
            }
        };
        // The pool keeps what is stored (whole microseconds), so values can hit it.
        let stored = DateTime::from_timestamp_micros(at.timestamp_micros()).expect("in range");
        self.instants.push(stored);
        if self.rng.bool() { stored } else { at }
    }

    /// An instant for a rule's value: mostly one the data holds.
    fn value_instant(&mut self) -> DateTime<Utc> {
        if !self.instants.is_empty() && self.chance(60) {
            return self.instants[self.rng.usize(..self.instants.len())];
        }
        let pool = self.instants.len();
        let at = self.instant();
        self.instants.truncate(pool);
        at
    }

    fn instant_text(&mut self, at: DateTime<Utc>) -> String {
        let text = match self.rng.u8(..3) {
            0 => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            1 => at
                .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
                .to_rfc3339(),
            _ => at.to_rfc3339_opts(SecondsFormat::Nanos, true),
        };
        if self.chance(20) {
            text.to_lowercase()
        } else {
            text
        }
    }

    fn word(&mut self) -> String {
        if self.chance(10) {
            let at = self.instant();
            return self.instant_text(at);
        }
        (*self.pick(&WORDS)).to_owned()
    }

    fn json(&mut self) -> Value {
        match self.rng.u8(..12) {
            0 => Value::Null,
            1 => json!(self.rng.bool()),
            2 | 3 => json!(self.rng.i64(-3..10)),
            4 => json!(f64::from(self.rng.i8(-6..20)) / 2.0),
            5 => json!(u64::MAX),
            6 | 7 => json!(self.word()),
            8 => json!([1, "a"]),
            9 => json!({"a": 1}),
            10 => json!(5.0),
            _ => json!(self.rng.i64(0..3)),
        }
    }

    fn text(&mut self, percent: u8) -> Option<String> {
        self.chance(percent).then(|| self.word())
    }

    fn record(&mut self, id: Uuid) -> CustomerRecord {
        let orders = self.rng.i64(-1..6);
        let spent = if self.chance(50) {
            *self.pick(&TOTALS)
        } else {
            self.rng.i64(-100..30_000)
        };
        let scores = self.chance(70).then(|| Scores {
            rfm_segment: self.text(70),
            recency_score: self.chance(70).then(|| self.rng.i32(1..6)),
            frequency_score: self.chance(70).then(|| self.rng.i32(1..6)),
            monetary_score: self.chance(70).then(|| self.rng.i32(1..6)),
            clv: self.chance(70).then(|| self.rng.i64(-10..50_000)),
            clv_tier: self.text(70),
            churn_risk: self.text(70),
            churn_probability: match self.rng.u8(..10) {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(0.5),
                _ => Some(f64::from(self.rng.u8(0..=100)) / 100.0),
            },
            emails_opened: self.rng.i64(0..5),
            emails_clicked: self.rng.i64(0..3),
            unsubscribed: self.rng.bool(),
        });
        let mut attributes = serde_json::Map::new();
        for (key, percent) in [
            ("vip", 60),
            ("level", 60),
            ("plan", 50),
            ("since", 40),
            ("misc", 50),
            ("rare", 4),
        ] {
            if !self.chance(percent) {
                continue;
            }
            let value = match key {
                "vip" if self.chance(80) => json!(self.rng.bool()),
                "level" if self.chance(80) => json!(self.rng.i64(0..10)),
                "since" if self.chance(80) => {
                    let at = self.instant();
                    json!(self.instant_text(at))
                }
                _ => self.json(),
            };
            attributes.insert(key.to_owned(), value);
        }
        let events = (0..self.rng.usize(0..7))
            .map(|_| {
                let properties = match self.rng.u8(..6) {
                    0 => json!("not an object"),
                    1 => json!({}),
                    _ => {
                        let category = self
                            .pick(&[
                                json!("shoes"),
                                json!("Shoes"),
                                json!("hats"),
                                json!(5),
                                json!(5.0),
                                Value::Null,
                                json!(true),
                            ])
                            .clone();
                        json!({"category": category, "price": self.rng.i64(0..3)})
                    }
                };
                BehaviourEvent {
                    event_type: (*self.pick(&EVENT_TYPES)).to_owned(),
                    occurred_at: if self.chance(50) {
                        self.instant()
                    } else {
                        self.now - Duration::seconds(self.rng.i64(-2 * 86_400..25 * 86_400))
                            + Duration::nanoseconds(self.rng.i64(0..1_000_000_000))
                    },
                    properties,
                }
            })
            .collect();
        let record = CustomerRecord {
            id,
            name: self.text(60),
            email: self
                .chance(80)
                .then(|| format!("User{}@Example.com", self.rng.u32(..))),
            phone: self.text(30),
            city: self.text(70),
            state: self.text(70),
            country: self.text(50),
            zip_code: self
                .chance(50)
                .then(|| format!("{:05}", self.rng.u32(..100_000))),
            loyalty_tier: self.text(60),
            signed_up_at: self.chance(80).then(|| self.instant()),
            consent_email: self.rng.bool(),
            consent_sms: self.rng.bool(),
            consent_push: self.rng.bool(),
            orders_count: orders,
            total_spent: spent,
            first_order_at: (orders > 0 || self.chance(10)).then(|| self.instant()),
            last_order_at: (orders > 0 || self.chance(10)).then(|| self.instant()),
            scores,
            attributes,
            events,
        };
        let micros = |t: DateTime<Utc>| {
            DateTime::from_timestamp_micros(t.timestamp_micros()).expect("in range")
        };
        let since = record
            .attributes
            .get("since")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        for (field, at) in [
            ("created_at", record.signed_up_at.map(micros)),
            ("first_order_at", record.first_order_at.map(micros)),
            ("last_order_at", record.last_order_at.map(micros)),
            ("attributes.since", since),
        ] {
            if let Some(at) = at {
                self.by_field.entry(field).or_default().push(at);
            }
        }
        record
    }

    /// A value of `field_type` (wild: of any type).
    fn value(&mut self, field: &str, field_type: FieldType, wild: bool) -> Value {
        if wild && self.chance(30) {
            return self.json();
        }
        // Mostly an instant this very field holds, in another spelling.
        let held = self.by_field.get(field).map_or(0, Vec::len);
        if held > 0 && self.chance(60) {
            let mut at = self.by_field[field][self.rng.usize(..held)];
            if self.rng.bool() {
                // Just off a stored microsecond: rounding of the bound decides.
                at += Duration::nanoseconds(self.rng.i64(-1500..1500));
            }
            return json!(self.instant_text(at));
        }
        match field_type {
            FieldType::Text => json!(self.word()),
            FieldType::Integer | FieldType::Event => match self.rng.u8(..3) {
                0 => json!(*self.pick(&TOTALS)),
                1 => json!(self.rng.i64(-2..8)),
                _ => json!(self.rng.i64(0..400)),
            },
            FieldType::Decimal => {
                if self.chance(20) {
                    json!(self.rng.i64(0..2))
                } else {
                    json!(f64::from(self.rng.u8(0..=100)) / 100.0)
                }
            }
            FieldType::Timestamp => {
                let at = self.value_instant();
                let at = if self.chance(30) {
                    at + Duration::nanoseconds(self.rng.i64(-1500..1500))
                } else {
                    at
                };
                json!(self.instant_text(at))
            }
            FieldType::Boolean => json!(self.rng.bool()),
            FieldType::Any if self.chance(30) => self.value("", FieldType::Timestamp, false),
            FieldType::Any => self.json(),
        }
    }

    fn condition(&mut self, wild: bool) -> Condition {
        let field = match self.rng.u8(..10) {
            _ if self.focus => (*self.pick(&[
                "created_at",
                "first_order_at",
                "last_order_at",
                "last_order_days_ago",
                "attributes.since",
                "event",
            ]))
            .to_owned(),
            0..=2 => (*self.pick(&TEXT_FIELDS)).to_owned(),
            3..=6 => (*self.pick(&OTHER_FIELDS)).to_owned(),
            7 | 8 => (*self.pick(&TRAITS)).to_owned(),
            _ if wild && self.chance(30) => "favourite_colour".to_owned(),
            _ => "event".to_owned(),
        };
        let field_type = fields::resolve(&field).map_or(FieldType::Any, |f| f.field_type);
        let operator = if self.focus && self.chance(25) {
            *self.pick(&["newer_than_days", "older_than_days"])
        } else if self.focus && self.rng.bool() {
            *self.pick(&COMPARISONS)
        } else if wild && self.chance(30) {
            *self.pick(OPERATORS)
        } else if wild && self.chance(40) {
            // Comparisons the field's type does not offer (instants read as equal,
            // traits ordered by time...).
            *self.pick(&COMPARISONS)
        } else {
            *self.pick(operators_for(field_type))
        };
        let mut c = Condition {
            id: String::new(),
            field: field.clone(),
            operator: operator.to_owned(),
            value: None,
            value2: None,
            event_type: None,
            within_days: None,
            property: None,
        };
        match operator {
            "is_set" | "is_not_set" => {
                if wild && self.chance(20) {
                    c.value = Some(self.json());
                }
            }
            "in" | "not_in" => {
                let items: Vec<Value> = (0..self.rng.usize(1..4))
                    .map(|_| self.value(&field, field_type, wild))
                    .collect();
                c.value = Some(Value::Array(items));
            }
            "between" => {
                let (a, b) = (
                    self.value(&field, field_type, wild),
                    self.value(&field, field_type, wild),
                );
                let swap = match (a.as_f64(), b.as_f64(), a.as_str(), b.as_str()) {
                    (Some(x), Some(y), _, _) => x > y,
                    (_, _, Some(x), Some(y)) => {
                        match (
                            DateTime::parse_from_rfc3339(x),
                            DateTime::parse_from_rfc3339(y),
                        ) {
                            (Ok(x), Ok(y)) => x > y,
                            _ => false,
                        }
                    }
                    _ => false,
                };
                let (a, b) = if swap && !wild { (b, a) } else { (a, b) };
                c.value = Some(a);
                c.value2 = Some(b);
            }
            "newer_than_days" | "older_than_days" => {
                c.value = Some(if wild && self.chance(20) {
                    self.json()
                } else if self.focus || self.rng.bool() {
                    json!(self.rng.i64(0..40))
                } else {
                    json!(self.rng.i64(0..400))
                });
            }
            "contains" | "not_contains" | "starts_with" | "ends_with" => {
                c.value = Some(if wild && self.chance(30) {
                    self.json()
                } else {
                    json!(*self.pick(&NEEDLES))
                });
            }
            "performed_at_least" | "performed_at_most" | "performed_exactly" | "not_performed" => {
                c.event_type = Some(if self.chance(90) {
                    (*self.pick(&EVENT_TYPES)).to_owned()
                } else {
                    "never_seen".to_owned()
                });
                c.within_days = Some(if wild && self.chance(10) {
                    self.rng.i64(-3..2)
                } else {
                    self.rng.i64(1..30)
                });
                if operator != "not_performed" || wild {
                    c.value = Some(json!(self.rng.i64(0..4)));
                }
                if self.chance(50) {
                    let name = *self.pick(&["category", "category", "price", "missing"]);
                    let value = self
                        .pick(&[
                            json!("shoes"),
                            json!("SHOES"),
                            json!(5),
                            json!(1),
                            json!(true),
                            json!("5"),
                        ])
                        .clone();
                    c.property = Some(PropertyFilter {
                        name: name.to_owned(),
                        value,
                    });
                }
            }
            _ => {
                c.value = Some(self.value(&c.field, field_type, wild));
            }
        }
        if wild && c.field != "event" && self.chance(5) {
            // An event operator on a plain field, or the reverse.
            c.event_type = Some("page_view".to_owned());
        }
        c
    }

    fn group(&mut self, depth: usize, wild: bool) -> Group {
        let conditions = (0..self.rng.usize(usize::from(wild)..4))
            .map(|_| self.condition(wild))
            .collect();
        let groups = if depth < 3 {
            (0..self.rng.usize(0..3))
                .map(|_| self.group(depth + 1, wild))
                .collect()
        } else {
            Vec::new()
        };
        Group {
            id: String::new(),
            logic: if self.rng.bool() {
                Logic::And
            } else {
                Logic::Or
            },
            negate: self.chance(25),
            conditions,
            groups,
        }
    }
}

/// Checks `trees` random trees against both indexes; returns how many split the
/// customers (neither nobody nor everyone).
fn check(
    g: &mut Gen,
    indexes: &[&TenantIndex],
    model: &BTreeMap<Uuid, CustomerRecord>,
    trees: usize,
    phase: &str,
) -> usize {
    let reference: Vec<(Uuid, mkt_segment_rules::evaluate::Customer)> = model
        .iter()
        .map(|(id, r)| (*id, r.to_reference()))
        .collect();
    for index in indexes {
        assert_eq!(index.len(), model.len(), "{phase}: customer count");
    }
    let mut splitting = 0;
    let mut checked = 0;
    while checked < trees {
        let wild = g.rng.bool();
        let tree = if g.chance(40) {
            // A lone condition: nothing around it can hide a wrong answer.
            Group {
                id: String::new(),
                logic: Logic::And,
                negate: false,
                conditions: vec![g.condition(wild)],
                groups: Vec::new(),
            }
        } else {
            g.group(1, wild)
        };
        if !wild && validate("rules", &tree).is_err() {
            continue;
        }
        checked += 1;
        // Now with a fraction of a microsecond (as a clock gives it) or without: the
        // rounding of every threshold differs.
        let now = if g.rng.bool() {
            g.now
        } else {
            DateTime::from_timestamp_micros(g.now.timestamp_micros()).expect("in range")
        };
        let expected: BTreeSet<Uuid> = reference
            .iter()
            .filter(|(_, c)| evaluate(&tree, c, now))
            .map(|(id, _)| *id)
            .collect();
        for index in indexes {
            let members = index.evaluate(&tree, now);
            let got: BTreeSet<Uuid> = members.ids().collect();
            if got != expected {
                let extra: Vec<_> = got.difference(&expected).take(3).collect();
                let missing: Vec<_> = expected.difference(&got).take(3).collect();
                let show = |id: &Uuid| format!("{:?}", model.get(id));
                panic!(
                    "{phase}: engine and reference disagree (wild: {wild}) for rules {}\n\
                     engine only: {extra:?}\nreference only: {missing:?}\nfirst customer: {}",
                    serde_json::to_string(&tree).unwrap_or_default(),
                    extra
                        .first()
                        .or(missing.first())
                        .map_or(String::new(), |id| show(id)),
                );
            }
            assert_eq!(members.count(), expected.len(), "{phase}: count");
            let n = g.rng.usize(0..20);
            let sample = members.sample(n);
            let first: Vec<Uuid> = expected.iter().take(n).copied().collect();
            assert_eq!(
                sample, first,
                "{phase}: sample is the smallest ids, ascending"
            );
            if let Some(id) = expected.iter().next() {
                assert!(members.contains(*id));
            }
        }
        if !expected.is_empty() && expected.len() < model.len() {
            splitting += 1;
        }
    }
    splitting
}

#[test]
fn engine_and_reference_evaluator_agree_on_random_rules_and_customers() {
    let seed = std::env::var("MKT_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_122u64);
    let now = Utc
        .timestamp_opt(1_795_000_000, 123_456_789)
        .single()
        .expect("now");
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed),
        now,
        instants: Vec::new(),
        by_field: BTreeMap::new(),
        focus: false,
    };
    let mut model: BTreeMap<Uuid, CustomerRecord> = BTreeMap::new();
    for _ in 0..400 {
        let id = Uuid::from_u128(g.rng.u128(..));
        let record = g.record(id);
        model.insert(id, record);
    }
    // One index loaded in id order (as the snapshot loader does), one in random order.
    let mut ordered = TenantIndex::default();
    for record in model.values() {
        ordered.upsert(record.clone());
    }
    // As `store::snapshot::load_tenant` leaves it.
    ordered.optimize();
    let mut shuffled_ids: Vec<Uuid> = model.keys().copied().collect();
    g.rng.shuffle(&mut shuffled_ids);
    let mut shuffled = TenantIndex::default();
    for id in &shuffled_ids {
        shuffled.upsert(model[id].clone());
    }
    let mut splitting = check(&mut g, &[&ordered, &shuffled], &model, 300, "load");

    // Replacements, removals, new customers, removed ones coming back.
    let mut removed = Vec::new();
    for round in 0..3 {
        let ids: Vec<Uuid> = model.keys().copied().collect();
        for _ in 0..150 {
            let id = *g.pick(&ids);
            if let Some(slot) = model.get_mut(&id) {
                let record = g.record(id);
                *slot = record.clone();
                ordered.upsert(record.clone());
                shuffled.upsert(record);
            }
        }
        for _ in 0..40 {
            let id = *g.pick(&ids);
            if model.remove(&id).is_some() {
                ordered.remove(id);
                shuffled.remove(id);
                removed.push(id);
            }
        }
        for _ in 0..50 {
            let id = if g.chance(20) && !removed.is_empty() {
                removed.swap_remove(g.rng.usize(..removed.len()))
            } else {
                Uuid::from_u128(g.rng.u128(..))
            };
            let record = g.record(id);
            model.insert(id, record.clone());
            ordered.upsert(record.clone());
            shuffled.upsert(record);
        }
        // Removing an unknown customer is a no-op.
        ordered.remove(Uuid::from_u128(7));
        splitting += check(
            &mut g,
            &[&ordered, &shuffled],
            &model,
            150,
            &format!("changes {round}"),
        );
    }

    // Churn: enough replaced events and text values to rebuild the event base and
    // compact the dictionaries several times.
    for round in 0..30 {
        if round % 10 == 5 {
            splitting += check(
                &mut g,
                &[&ordered, &shuffled],
                &model,
                60,
                &format!("churn {round}"),
            );
        }
        let ids: Vec<Uuid> = model.keys().copied().collect();
        for id in ids {
            if g.chance(60) {
                let record = g.record(id);
                model.insert(id, record.clone());
                ordered.upsert(record.clone());
                shuffled.upsert(record);
            }
        }
    }
    splitting += check(&mut g, &[&ordered, &shuffled], &model, 300, "churn");
    // Edges: lone conditions on instants, compared every way, at values a microsecond
    // or less from what is stored.
    g.focus = true;
    splitting += check(&mut g, &[&ordered, &shuffled], &model, 600, "edges");
    assert!(
        splitting > 300,
        "only {splitting} trees split the customers"
    );
    assert!(ordered.memory_bytes() > 0);
}
