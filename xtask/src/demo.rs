//! `cargo xtask demo`: a realistic synthetic store, loaded through the public API.
//!
//! Customers (names, emails on reserved `.example` domains, addresses in seven
//! countries, sign-ups spread over three years, consent, loyalty tiers), their order
//! histories (heavy-tailed order counts, Black Friday / holiday / weekend seasonality, a
//! 52-product catalogue in minor units, promo codes, cancellations and refunds) and
//! behaviour events (the shopping session behind every order, browsing and abandoned
//! carts, newsletter opens and clicks, campaign conversions).
//!
//! Everything is a pure function of `--seed`, `--as-of` and the customer's index, so a
//! run is reproducible, and each 1,000-row batch carries an `Idempotency-Key` derived
//! from the seed, the kind, the batch index and the body: re-running after a crash
//! replays what was stored instead of writing it twice. Orders also carry `externalId`s,
//! so an order re-sent under another key comes back 409 `duplicate_order`, which counts
//! as already present.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeDelta, Timelike, Utc, Weekday};
use serde_json::{Value, json};

const USAGE: &str = "usage: cargo xtask demo [--customers N] [--seed S] [--concurrency C] [--as-of YYYY-MM-DD] [--tenant T] [--dry-run]";
const DEFAULT_CUSTOMERS: usize = 2_000;
const DEFAULT_SEED: u64 = 42;
const DEFAULT_CONCURRENCY: usize = 4;
/// Rows per batch request: the API's maximum.
const BATCH: usize = 1_000;
/// How far back sign-ups (and so order histories) go.
const HISTORY_DAYS: u64 = 3 * 365;
/// Attempts per batch on transport errors, 5xx, 429 and `idempotency_in_progress`.
const ATTEMPTS: u32 = 6;

// ---------------------------------------------------------------------------------
// The running stack
// ---------------------------------------------------------------------------------

/// The settings `cargo xtask up` writes to `.dev/stack.env` (`KEY='value'` lines).
pub(crate) struct StackEnv {
    path: PathBuf,
    vars: BTreeMap<String, String>,
}

impl StackEnv {
    /// Reads `.dev/stack.env`; a missing file means the stack is not up.
    pub(crate) fn load() -> Result<Self> {
        let path = crate::workspace_root().join(".dev").join("stack.env");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "the stack is not up: {} does not exist. Start it with `cargo xtask up` \
                 (in another shell, or `cargo xtask up > /tmp/up.log 2>&1 &`) and wait for \"Stack is up\"",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let vars = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| {
                let value = value
                    .strip_prefix('\'')
                    .and_then(|v| v.strip_suffix('\''))
                    .map_or_else(|| value.to_owned(), |v| v.replace(r"'\''", "'"));
                (key.trim().to_owned(), value)
            })
            .collect();
        Ok(Self { path, vars })
    }

    /// One setting, or an error naming the file.
    pub(crate) fn get(&self, key: &str) -> Result<&str> {
        self.vars.get(key).map(String::as_str).with_context(|| {
            format!(
                "{key} is missing from {}; restart the stack",
                self.path.display()
            )
        })
    }
}

/// Fails with a clear message when the gateway does not answer its `/healthz`.
pub(crate) async fn check_gateway(client: &reqwest::Client, gateway: &str) -> Result<()> {
    let url = format!("{gateway}/healthz");
    match client
        .get(&url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => bail!(
            "the gateway answered {} on {url}; is the stack healthy? (see .dev/logs/gateway.log)",
            response.status()
        ),
        Err(e) => bail!(
            "the gateway does not answer on {url} ({e}): .dev/stack.env exists but the stack \
             looks down; start it with `cargo xtask up`"
        ),
    }
}

// ---------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea & Flood, 2014): a few lines, fast, statistically fine for
/// synthetic data, and the same sequence on every platform and every version of this
/// code, which a crate's generator does not promise.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator for one independent stream: (`seed`, `stream`, `index`) always gives
    /// the same sequence, and neighbouring indices give unrelated ones.
    pub(crate) fn derive(seed: u64, stream: u64, index: u64) -> Self {
        Self(mix(
            mix(seed ^ mix(stream.wrapping_mul(GOLDEN))).wrapping_add(index.wrapping_mul(GOLDEN))
        ))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n) (multiply-shift; the bias is below 2^-40 for our n). `n` > 0.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi].
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element, uniformly. `items` is never empty here (static tables).
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index drawn with the given (non-negative, not all zero) weights.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut target = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if target < *w {
                return i;
            }
            target -= w;
        }
        weights.len() - 1
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a batch body for its idempotency key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

const STREAM_CUSTOMER: u64 = 1;
const STREAM_EVENTS: u64 = 2;

// ---------------------------------------------------------------------------------
// The store: catalogue, places, people
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Season {
    AllYear,
    Winter,
    Summer,
    /// Only sold from mid-November to December.
    Holiday,
    /// All year, mostly bought in December.
    Gifting,
}

struct Product {
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    /// US price in cents; other currencies are converted and re-rounded.
    price: i64,
    season: Season,
    /// Relative sales weight.
    popularity: f64,
}

const fn product(
    sku: &'static str,
    name: &'static str,
    category: &'static str,
    price: i64,
    season: Season,
    popularity: f64,
) -> Product {
    Product {
        sku,
        name,
        category,
        price,
        season,
        popularity,
    }
}

use Season::{AllYear, Gifting, Holiday, Summer, Winter};

const CATALOGUE: [Product; 52] = [
    product(
        "SKU-1001",
        "Classic Crew Tee",
        "apparel",
        2499,
        AllYear,
        3.0,
    ),
    product(
        "SKU-1002",
        "Organic V-Neck Tee",
        "apparel",
        2899,
        AllYear,
        1.8,
    ),
    product(
        "SKU-1003",
        "Heavyweight Hoodie",
        "apparel",
        6499,
        Winter,
        2.2,
    ),
    product(
        "SKU-1004",
        "Zip Fleece Jacket",
        "apparel",
        7999,
        Winter,
        1.2,
    ),
    product(
        "SKU-1005",
        "Slim Stretch Jeans",
        "apparel",
        7499,
        AllYear,
        2.0,
    ),
    product("SKU-1006", "Relaxed Chinos", "apparel", 5999, AllYear, 1.3),
    product(
        "SKU-1007",
        "Linen Button-Down Shirt",
        "apparel",
        5499,
        Summer,
        1.1,
    ),
    product(
        "SKU-1008",
        "Merino Crewneck Sweater",
        "apparel",
        8999,
        Winter,
        1.0,
    ),
    product("SKU-1009", "Puffer Jacket", "apparel", 14999, Winter, 0.9),
    product("SKU-1010", "Rain Shell", "apparel", 11999, AllYear, 0.6),
    product("SKU-1011", "Wrap Midi Dress", "apparel", 6999, Summer, 1.0),
    product(
        "SKU-1012",
        "Everyday Leggings",
        "apparel",
        4499,
        AllYear,
        1.9,
    ),
    product("SKU-1013", "Running Shorts", "apparel", 3499, Summer, 1.2),
    product(
        "SKU-1014",
        "Wool Socks 3-Pack",
        "apparel",
        1999,
        Winter,
        2.4,
    ),
    product(
        "SKU-1015",
        "Cotton Boxer Briefs 3-Pack",
        "apparel",
        2999,
        AllYear,
        1.5,
    ),
    product(
        "SKU-2001",
        "Canvas Low-Top Sneakers",
        "footwear",
        5999,
        AllYear,
        1.7,
    ),
    product(
        "SKU-2002",
        "Leather Chelsea Boots",
        "footwear",
        17999,
        Winter,
        0.7,
    ),
    product(
        "SKU-2003",
        "Trail Running Shoes",
        "footwear",
        12999,
        AllYear,
        0.9,
    ),
    product("SKU-2004", "Suede Loafers", "footwear", 11999, AllYear, 0.5),
    product("SKU-2005", "Slide Sandals", "footwear", 3499, Summer, 1.1),
    product(
        "SKU-3001",
        "Leather Belt",
        "accessories",
        3999,
        AllYear,
        0.9,
    ),
    product(
        "SKU-3002",
        "Canvas Tote Bag",
        "accessories",
        2999,
        AllYear,
        1.4,
    ),
    product(
        "SKU-3003",
        "Everyday Backpack",
        "accessories",
        8999,
        AllYear,
        0.9,
    ),
    product("SKU-3004", "Wool Beanie", "accessories", 2499, Winter, 1.6),
    product("SKU-3005", "Baseball Cap", "accessories", 2299, Summer, 1.2),
    product(
        "SKU-3006",
        "Polarized Sunglasses",
        "accessories",
        7999,
        Summer,
        0.7,
    ),
    product(
        "SKU-3007",
        "Minimalist Watch",
        "accessories",
        14999,
        Gifting,
        0.4,
    ),
    product(
        "SKU-3008",
        "Leather Card Wallet",
        "accessories",
        3499,
        Gifting,
        0.9,
    ),
    product("SKU-3009", "Silk Scarf", "accessories", 4999, Gifting, 0.5),
    product(
        "SKU-3010",
        "Stainless Water Bottle",
        "accessories",
        2799,
        AllYear,
        1.5,
    ),
    product("SKU-4001", "Stoneware Mug Set", "home", 3499, Gifting, 1.0),
    product("SKU-4002", "Cedar Soy Candle", "home", 2499, Gifting, 1.7),
    product("SKU-4003", "Linen Throw Pillow", "home", 3999, AllYear, 0.9),
    product("SKU-4004", "Chunky Knit Throw", "home", 8999, Winter, 0.7),
    product("SKU-4005", "Ceramic Planter", "home", 2999, Summer, 0.8),
    product(
        "SKU-4006",
        "Pour-Over Coffee Kit",
        "home",
        4999,
        Gifting,
        0.8,
    ),
    product(
        "SKU-4007",
        "Cotton Bath Towel Set",
        "home",
        5999,
        AllYear,
        0.7,
    ),
    product("SKU-4008", "Reed Diffuser", "home", 3299, AllYear, 0.8),
    product(
        "SKU-5001",
        "Daily Facial Cleanser",
        "beauty",
        1899,
        AllYear,
        1.8,
    ),
    product(
        "SKU-5002",
        "Hydrating Moisturizer",
        "beauty",
        2999,
        AllYear,
        1.6,
    ),
    product("SKU-5003", "Vitamin C Serum", "beauty", 3899, AllYear, 1.1),
    product("SKU-5004", "SPF 50 Sunscreen", "beauty", 2199, Summer, 1.4),
    product("SKU-5005", "Lip Balm Trio", "beauty", 1299, Winter, 1.5),
    product("SKU-5006", "Beard Oil", "beauty", 1799, AllYear, 0.7),
    product("SKU-6001", "Yoga Mat", "outdoor", 6999, AllYear, 0.8),
    product(
        "SKU-6002",
        "Resistance Band Set",
        "outdoor",
        2999,
        AllYear,
        0.9,
    ),
    product(
        "SKU-6003",
        "Insulated Travel Mug",
        "outdoor",
        2999,
        Gifting,
        1.0,
    ),
    product("SKU-6004", "Packable Daypack", "outdoor", 5499, Summer, 0.7),
    product("SKU-6005", "Camping Hammock", "outdoor", 6999, Summer, 0.5),
    product("SKU-7001", "Gift Card $50", "gifts", 5000, Gifting, 0.6),
    product("SKU-7002", "Holiday Gift Box", "gifts", 7999, Holiday, 1.5),
    product("SKU-7003", "Advent Calendar", "gifts", 4999, Holiday, 1.2),
];

const CATEGORIES: [&str; 6] = [
    "apparel",
    "footwear",
    "accessories",
    "home",
    "beauty",
    "outdoor",
];

/// How much more (or less) a product sells in a given month.
fn season_factor(season: Season, month: u32, day: u32) -> f64 {
    match (season, month) {
        (AllYear, _) => 1.0,
        (Winter, 11 | 12 | 1 | 2) | (Summer, 5..=8) => 2.5,
        (Winter, 3 | 10) | (Summer, 4 | 9) => 1.0,
        (Winter | Summer, _) => 0.3,
        (Holiday, 11) if day >= 15 => 6.0,
        (Holiday, 12) => 6.0,
        (Holiday, _) => 0.0,
        (Gifting, 12) => 3.5,
        (Gifting, 11) => 2.0,
        (Gifting, _) => 0.6,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Country {
    Us,
    Ca,
    Uk,
    De,
    Fr,
    Au,
    Nl,
}

impl Country {
    fn name(self) -> &'static str {
        match self {
            Country::Us => "USA",
            Country::Ca => "Canada",
            Country::Uk => "United Kingdom",
            Country::De => "Germany",
            Country::Fr => "France",
            Country::Au => "Australia",
            Country::Nl => "Netherlands",
        }
    }

    fn currency(self) -> &'static str {
        match self {
            Country::Us => "USD",
            Country::Ca => "CAD",
            Country::Uk => "GBP",
            Country::De | Country::Fr | Country::Nl => "EUR",
            Country::Au => "AUD",
        }
    }

    /// Rough price-list factor from USD.
    fn price_factor(self) -> f64 {
        match self {
            Country::Us => 1.0,
            Country::Ca => 1.35,
            Country::Uk => 0.8,
            Country::De | Country::Fr | Country::Nl => 0.92,
            Country::Au => 1.5,
        }
    }

    /// A number in a range reserved for fiction or documentation where one exists
    /// (555-01xx in North America, Ofcom's drama range, ARCEP's 01 99 00, ACMA's 5550).
    fn phone(self, rng: &mut Rng, area: &str) -> String {
        match self {
            Country::Us | Country::Ca => format!("({area}) 555-01{:02}", rng.below(100)),
            Country::Uk => format!("+44 20 7946 0{:03}", rng.below(1000)),
            Country::De => format!("+49 30 2390 {:04}", rng.below(10_000)),
            Country::Fr => format!("+33 1 99 00 {:02} {:02}", rng.below(100), rng.below(100)),
            Country::Au => format!("+61 2 5550 {:04}", rng.below(10_000)),
            Country::Nl => format!("+31 20 799 {:04}", rng.below(10_000)),
        }
    }

    fn street(self, rng: &mut Rng) -> String {
        const US: [&str; 16] = [
            "Main St",
            "Oak Ave",
            "Maple Dr",
            "Cedar Ln",
            "Pine St",
            "Elm St",
            "Washington Ave",
            "Lake Rd",
            "Hill St",
            "Park Ave",
            "Sunset Blvd",
            "River Rd",
            "Church St",
            "Highland Ave",
            "Market St",
            "Willow Way",
        ];
        const UK: [&str; 6] = [
            "High Street",
            "Station Road",
            "Church Lane",
            "Victoria Road",
            "Mill Lane",
            "Park Road",
        ];
        const DE: [&str; 5] = [
            "Hauptstraße",
            "Schulstraße",
            "Gartenstraße",
            "Bahnhofstraße",
            "Lindenallee",
        ];
        const FR: [&str; 5] = [
            "rue de la République",
            "avenue Victor Hugo",
            "rue Pasteur",
            "boulevard Voltaire",
            "rue du Moulin",
        ];
        const NL: [&str; 4] = ["Kerkstraat", "Prinsengracht", "Molenweg", "Dorpsstraat"];
        let number = rng.between(1, 250);
        match self {
            Country::Us | Country::Ca | Country::Au => {
                format!("{} {}", rng.between(10, 9999), rng.pick(&US))
            }
            Country::Uk => format!("{number} {}", rng.pick(&UK)),
            Country::De => format!("{} {number}", rng.pick(&DE)),
            Country::Fr => format!("{number} {}", rng.pick(&FR)),
            Country::Nl => format!("{} {number}", rng.pick(&NL)),
        }
    }
}

struct Place {
    city: &'static str,
    state: &'static str,
    zip: &'static str,
    country: Country,
    /// Phone area code (North America).
    area: &'static str,
    /// Share of customers.
    weight: f64,
}

const fn place(
    city: &'static str,
    state: &'static str,
    zip: &'static str,
    country: Country,
    area: &'static str,
    weight: f64,
) -> Place {
    Place {
        city,
        state,
        zip,
        country,
        area,
        weight,
    }
}

const PLACES: [Place; 40] = [
    place("New York", "NY", "10001", Country::Us, "212", 6.0),
    place("Brooklyn", "NY", "11201", Country::Us, "718", 3.0),
    place("Los Angeles", "CA", "90012", Country::Us, "213", 5.0),
    place("San Francisco", "CA", "94103", Country::Us, "415", 3.0),
    place("San Diego", "CA", "92101", Country::Us, "619", 2.0),
    place("Chicago", "IL", "60601", Country::Us, "312", 4.0),
    place("Houston", "TX", "77002", Country::Us, "713", 3.0),
    place("Austin", "TX", "78701", Country::Us, "512", 2.5),
    place("Dallas", "TX", "75201", Country::Us, "214", 2.5),
    place("Phoenix", "AZ", "85004", Country::Us, "602", 2.0),
    place("Philadelphia", "PA", "19103", Country::Us, "215", 2.0),
    place("Pittsburgh", "PA", "15222", Country::Us, "412", 1.0),
    place("Seattle", "WA", "98101", Country::Us, "206", 2.5),
    place("Portland", "OR", "97205", Country::Us, "503", 1.5),
    place("Denver", "CO", "80202", Country::Us, "303", 2.0),
    place("Boston", "MA", "02108", Country::Us, "617", 2.0),
    place("Atlanta", "GA", "30303", Country::Us, "404", 2.0),
    place("Miami", "FL", "33130", Country::Us, "305", 2.0),
    place("Minneapolis", "MN", "55401", Country::Us, "612", 1.2),
    place("Nashville", "TN", "37203", Country::Us, "615", 1.2),
    place("Charlotte", "NC", "28202", Country::Us, "704", 1.2),
    place("Columbus", "OH", "43215", Country::Us, "614", 1.0),
    place("Salt Lake City", "UT", "84101", Country::Us, "801", 0.8),
    place("Madison", "WI", "53703", Country::Us, "608", 0.6),
    place("Toronto", "ON", "M5H 2N2", Country::Ca, "416", 3.0),
    place("Vancouver", "BC", "V6B 1A1", Country::Ca, "604", 2.0),
    place("Montreal", "QC", "H2Y 1C6", Country::Ca, "514", 1.5),
    place("Calgary", "AB", "T2P 1J9", Country::Ca, "403", 1.0),
    place("London", "Greater London", "SW1A 1AA", Country::Uk, "", 4.0),
    place(
        "Manchester",
        "Greater Manchester",
        "M1 1AE",
        Country::Uk,
        "",
        1.5,
    ),
    place("Edinburgh", "Scotland", "EH1 1YZ", Country::Uk, "", 1.0),
    place("Bristol", "England", "BS1 4DJ", Country::Uk, "", 0.8),
    place("Berlin", "Berlin", "10115", Country::De, "", 2.0),
    place("Munich", "Bavaria", "80331", Country::De, "", 1.2),
    place("Hamburg", "Hamburg", "20095", Country::De, "", 1.0),
    place("Paris", "Île-de-France", "75001", Country::Fr, "", 2.0),
    place(
        "Lyon",
        "Auvergne-Rhône-Alpes",
        "69001",
        Country::Fr,
        "",
        0.8,
    ),
    place("Sydney", "NSW", "2000", Country::Au, "", 2.0),
    place("Melbourne", "VIC", "3000", Country::Au, "", 1.5),
    place(
        "Amsterdam",
        "North Holland",
        "1012 AB",
        Country::Nl,
        "",
        1.5,
    ),
];

const FIRST_NAMES: [&str; 64] = [
    "Emma",
    "Liam",
    "Olivia",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Charlotte",
    "Benjamin",
    "Amelia",
    "Ethan",
    "Harper",
    "Aiden",
    "Evelyn",
    "Jackson",
    "Aria",
    "Sebastian",
    "Chloe",
    "Daniel",
    "Layla",
    "Henry",
    "Zoe",
    "Samuel",
    "Nora",
    "David",
    "Priya",
    "Arjun",
    "Mei",
    "Wei",
    "Hana",
    "Kenji",
    "Fatima",
    "Omar",
    "Aisha",
    "Yusuf",
    "Sofia",
    "Diego",
    "Valentina",
    "Carlos",
    "Camila",
    "Luis",
    "Ingrid",
    "Lars",
    "Freya",
    "Finn",
    "Chiara",
    "Marco",
    "Amara",
    "Kwame",
    "Zara",
    "Ravi",
    "Leila",
    "Nikolai",
    "Elena",
    "Grace",
    "Maya",
    "Owen",
    "Ruby",
    "Theo",
];

const LAST_NAMES: [&str; 64] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Carter",
    "Mitchell",
    "Patel",
    "Kim",
    "Chen",
    "Wang",
    "Singh",
    "Khan",
    "Schmidt",
    "Dubois",
    "Rossi",
    "O'Brien",
    "Murphy",
    "Kowalski",
    "Novak",
    "Okafor",
    "Mensah",
    "Haddad",
    "Silva",
    "Santos",
    "Tanaka",
    "Sato",
    "Larsen",
    "Berg",
    "Fischer",
    "Moreau",
];

/// Reserved `.example` names (RFC 2606) shaped like real providers: realistic, and no
/// campaign run against demo data can ever reach a real inbox.
const EMAIL_DOMAINS: [(&str, f64); 7] = [
    ("gmail.example", 40.0),
    ("yahoo.example", 12.0),
    ("outlook.example", 12.0),
    ("icloud.example", 10.0),
    ("hotmail.example", 6.0),
    ("proton.example", 3.0),
    ("fastmail.example", 2.0),
];

const CHANNELS: [(&str, f64); 6] = [
    ("organic_search", 30.0),
    ("paid_search", 20.0),
    ("social", 18.0),
    ("referral", 10.0),
    ("email", 7.0),
    ("direct", 15.0),
];

const DEVICES: [(&str, f64); 3] = [("mobile", 58.0), ("desktop", 35.0), ("tablet", 7.0)];

const SEARCHES: [&str; 12] = [
    "hoodie",
    "black jeans",
    "gift for him",
    "gift for her",
    "sneakers",
    "candle",
    "sunscreen",
    "yoga mat",
    "wool socks",
    "backpack",
    "linen shirt",
    "advent calendar",
];

fn weights<T>(table: &[(T, f64)]) -> Vec<f64> {
    table.iter().map(|(_, w)| *w).collect()
}

fn pick_weighted<T: Copy>(rng: &mut Rng, table: &[(T, f64)]) -> T {
    table[rng.weighted(&weights(table))].0
}

// ---------------------------------------------------------------------------------
// Time: seasonality
// ---------------------------------------------------------------------------------

/// Order intensity by date: Black Friday / Cyber Monday week, holiday gifting until the
/// shipping cut-off, a January lull.
fn date_weight(at: DateTime<Utc>) -> f64 {
    let month = match (at.month(), at.day()) {
        (1, _) => 0.8,
        (2, _) => 0.75,
        (3, _) => 0.85,
        (4 | 6 | 9, _) => 0.9,
        (5 | 7 | 8, _) => 0.95,
        (10, _) => 1.0,
        (11, d) if d >= 24 => 3.2,
        (11, _) => 1.4,
        (12, d) if d <= 20 => 2.0,
        _ => 1.1,
    };
    let weekday = match at.weekday() {
        Weekday::Sat => 1.35,
        Weekday::Sun => 1.3,
        Weekday::Fri => 1.1,
        _ => 0.9,
    };
    month * weekday
}
const MAX_DATE_WEIGHT: f64 = 3.2 * 1.35;

/// Shopping by hour (UTC, close enough for a demo): lunch and evening peaks.
const HOUR_WEIGHTS: [f64; 24] = [
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 0.9, 1.0, 1.1, 1.2, 1.4, 1.3, 1.1, 1.0, 1.0, 1.1, 1.3,
    1.6, 1.8, 1.7, 1.2, 0.6,
];

fn time_of_day(rng: &mut Rng) -> TimeDelta {
    let hour = rng.weighted(&HOUR_WEIGHTS) as i64;
    TimeDelta::seconds(hour * 3600 + rng.below(3600) as i64)
}

fn midnight(at: DateTime<Utc>) -> DateTime<Utc> {
    at - TimeDelta::seconds(i64::from(at.num_seconds_from_midnight()))
        - TimeDelta::nanoseconds(i64::from(at.nanosecond()))
}

/// A purchase-like instant in [from, to), weighted by season, weekday and hour.
fn seasonal_instant(
    rng: &mut Rng,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let span = (to - from).num_seconds();
    if span <= 0 {
        return None;
    }
    for _ in 0..200 {
        let day = midnight(from + TimeDelta::seconds(rng.below(span as u64) as i64));
        let at = day + time_of_day(rng);
        if at < from || at >= to {
            continue;
        }
        if rng.chance(date_weight(at) / MAX_DATE_WEIGHT) {
            return Some(at);
        }
    }
    Some(from + TimeDelta::seconds(span / 2))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

// ---------------------------------------------------------------------------------
// One customer's plan: who they are and what they bought
// ---------------------------------------------------------------------------------

struct OrderPlan {
    external_id: String,
    at: DateTime<Utc>,
    /// (catalogue index, quantity), distinct products.
    lines: Vec<(usize, i32)>,
    status: &'static str,
    promo: Option<String>,
}

struct CustomerPlan {
    index: usize,
    external_id: String,
    first: &'static str,
    last: &'static str,
    email: String,
    phone: Option<String>,
    place: &'static Place,
    street: String,
    zip: String,
    signup: DateTime<Utc>,
    consent: (bool, bool, bool),
    channel: &'static str,
    category: &'static str,
    device: &'static str,
    birth_year: u64,
    orders: Vec<OrderPlan>,
}

/// Whether a status counts as spend.
fn counts_as_spend(status: &str) -> bool {
    !matches!(status, "cancelled" | "refunded")
}

/// Local price in minor units: converted, and re-rounded to .99 where the US price ends so.
fn local_price(usd: i64, country: Country) -> i64 {
    let factor = country.price_factor();
    if usd % 100 == 99 {
        ((usd + 1) as f64 * factor / 100.0).round() as i64 * 100 - 1
    } else {
        (usd as f64 * factor / 100.0).round() as i64 * 100
    }
}

impl CustomerPlan {
    fn new(seed: u64, as_of: DateTime<Utc>, index: usize) -> Self {
        let mut rng = Rng::derive(seed, STREAM_CUSTOMER, index as u64);
        let first = *rng.pick(&FIRST_NAMES);
        let last = *rng.pick(&LAST_NAMES);
        let f = first.to_ascii_lowercase();
        let l: String = last
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_ascii_lowercase();
        let n = index + 1;
        // The index keeps every address unique within a seed.
        let local = match rng.below(6) {
            0 => format!("{f}.{l}{n}"),
            1 => format!("{f}{l}{n}"),
            2 => format!("{}{l}{n}", &f[..1]),
            3 => format!("{f}_{l}{n}"),
            4 => format!("{l}.{f}{n}"),
            _ => format!("{f}{n}"),
        };
        let email = format!("{local}@{}", pick_weighted(&mut rng, &EMAIL_DOMAINS));
        let place = &PLACES[rng.weighted(&PLACES.iter().map(|p| p.weight).collect::<Vec<_>>())];
        let zip = match place.country {
            Country::Us => {
                let base: u64 = place.zip.parse().unwrap_or(10_001);
                format!("{:05}", base + rng.below(40))
            }
            _ => place.zip.to_owned(),
        };
        let phone = rng
            .chance(0.85)
            .then(|| place.country.phone(&mut rng, place.area));
        let street = place.country.street(&mut rng);
        // A growing store: sign-ups per day rise linearly from none three years ago.
        let age_days = (HISTORY_DAYS as f64 * (1.0 - rng.unit().sqrt())) as i64;
        let signup = midnight(as_of) - TimeDelta::days(age_days + 1) + time_of_day(&mut rng);
        let consent = (rng.chance(0.68), rng.chance(0.27), rng.chance(0.41));
        let channel = pick_weighted(&mut rng, &CHANNELS);
        let category = *rng.pick(&CATEGORIES);
        let device = pick_weighted(&mut rng, &DEVICES);
        let birth_year = rng.between(1955, 2006);
        let mut plan = CustomerPlan {
            index,
            external_id: format!("CUST-{seed}-{n:06}"),
            first,
            last,
            email,
            phone,
            place,
            street,
            zip,
            signup,
            consent,
            channel,
            category,
            device,
            birth_year,
            orders: Vec::new(),
        };
        plan.orders = plan.order_history(seed, as_of, &mut rng);
        plan
    }

    /// A heavy-tailed number of orders (22% never buy, most buyers buy once, a few
    /// dozen times), dated by season within the customer's tenure.
    fn order_history(&self, seed: u64, as_of: DateTime<Utc>, rng: &mut Rng) -> Vec<OrderPlan> {
        let count = if rng.chance(0.22) {
            0
        } else {
            // Discrete Pareto, alpha 1.25: P(k >= n) = n^-1.25.
            let k = rng.unit().max(1e-9).powf(-1.0 / 1.25).floor() as u64;
            let tenure_weeks = ((as_of - self.signup).num_days() / 7) as u64;
            k.clamp(1, 120).min(1 + tenure_weeks / 2)
        };
        let mut dates: Vec<DateTime<Utc>> = Vec::with_capacity(count as usize);
        for n in 0..count {
            let at = if n == 0 && rng.chance(0.55) {
                // Many first orders come right after signing up.
                let after =
                    TimeDelta::seconds((-(1.0 - rng.unit()).ln() * 3.0 * 86_400.0) as i64 + 300);
                Some(self.signup + after).filter(|at| *at < as_of)
            } else {
                None
            };
            if let Some(at) = at.or_else(|| seasonal_instant(rng, self.signup, as_of)) {
                dates.push(at);
            }
        }
        dates.sort();
        dates
            .into_iter()
            .enumerate()
            .map(|(n, at)| {
                let mut lines: Vec<(usize, i32)> = Vec::new();
                let wanted = [1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4][rng.below(12) as usize];
                let catalogue: Vec<f64> = CATALOGUE
                    .iter()
                    .map(|p| {
                        p.popularity
                            * season_factor(p.season, at.month(), at.day())
                            * if p.category == self.category {
                                3.0
                            } else {
                                1.0
                            }
                    })
                    .collect();
                for _ in 0..wanted * 3 {
                    if lines.len() == wanted {
                        break;
                    }
                    let product = rng.weighted(&catalogue);
                    if lines.iter().all(|(p, _)| *p != product) {
                        let quantity = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3]
                            [rng.below(20) as usize];
                        lines.push((product, quantity));
                    }
                }
                let age = as_of - at;
                let roll = rng.unit();
                let status = if age < TimeDelta::days(2) {
                    if roll < 0.7 {
                        "processing"
                    } else if roll < 0.96 {
                        "shipped"
                    } else {
                        "cancelled"
                    }
                } else if age < TimeDelta::days(6) {
                    if roll < 0.55 {
                        "shipped"
                    } else if roll < 0.97 {
                        "delivered"
                    } else {
                        "cancelled"
                    }
                } else if roll < 0.90 {
                    "delivered"
                } else if roll < 0.96 {
                    "refunded"
                } else {
                    "cancelled"
                };
                let yy = at.year() % 100;
                let promo = match (at.month(), at.day()) {
                    (11, d) if d >= 20 && rng.chance(0.45) => Some(format!("BLACKFRIDAY{yy}")),
                    (12, d) if d <= 24 && rng.chance(0.3) => Some(format!("HOLIDAY{yy}")),
                    _ if n == 0 && rng.chance(0.3) => Some("WELCOME10".to_owned()),
                    (3..=5, _) if rng.chance(0.07) => Some(format!("SPRING{yy}")),
                    (6..=8, _) if rng.chance(0.07) => Some(format!("SUMMER{yy}")),
                    _ if rng.chance(0.04) => {
                        Some((*rng.pick(&["FREESHIP", "FRIENDS15", "VIP20"])).to_owned())
                    }
                    _ => None,
                };
                OrderPlan {
                    external_id: format!("ORD-{seed}-{:06}-{:03}", self.index + 1, n + 1),
                    at,
                    lines,
                    status,
                    promo,
                }
            })
            .collect()
    }

    fn currency(&self) -> &'static str {
        self.place.country.currency()
    }

    fn price(&self, product: usize) -> i64 {
        local_price(CATALOGUE[product].price, self.place.country)
    }

    fn order_total(&self, order: &OrderPlan) -> i64 {
        order
            .lines
            .iter()
            .map(|(p, q)| self.price(*p) * i64::from(*q))
            .sum()
    }

    /// Lifetime spend in US cents (refunds and cancellations excluded) sets the tier.
    fn loyalty_tier(&self) -> Option<&'static str> {
        if self.orders.is_empty() {
            return None;
        }
        let spend: i64 = self
            .orders
            .iter()
            .filter(|o| counts_as_spend(o.status))
            .flat_map(|o| o.lines.iter())
            .map(|(p, q)| CATALOGUE[*p].price * i64::from(*q))
            .sum();
        Some(match spend {
            ..20_000 => "bronze",
            20_000..60_000 => "silver",
            60_000..150_000 => "gold",
            _ => "platinum",
        })
    }

    fn customer_json(&self) -> Value {
        let mut body = json!({
            "name": format!("{} {}", self.first, self.last),
            "first_name": self.first,
            "last_name": self.last,
            "email": self.email,
            "external_id": self.external_id,
            "created_at": rfc3339(self.signup),
            "address": {
                "street": self.street,
                "city": self.place.city,
                "state": self.place.state,
                "zipCode": self.zip,
                "country": self.place.country.name(),
            },
            "attributes": {
                "acquisition_channel": self.channel,
                "preferred_category": self.category,
                "preferred_device": self.device,
                "birth_year": self.birth_year,
            },
            "consent": {"email": self.consent.0, "sms": self.consent.1, "push": self.consent.2},
        });
        if let Some(phone) = &self.phone {
            body["phone"] = json!(phone);
        }
        if let Some(tier) = self.loyalty_tier() {
            body["loyalty_tier"] = json!(tier);
        }
        body
    }

    fn order_json(&self, order: &OrderPlan) -> Value {
        let items: Vec<Value> = order
            .lines
            .iter()
            .map(|(p, q)| {
                let price = self.price(*p);
                json!({
                    "productId": CATALOGUE[*p].sku,
                    "name": CATALOGUE[*p].name,
                    "price": price,
                    "quantity": q,
                    "total": price * i64::from(*q),
                })
            })
            .collect();
        let mut body = json!({
            "customerExternalId": self.external_id,
            "externalId": order.external_id,
            "items": items,
            "totalAmount": self.order_total(order),
            "currency": self.currency(),
            "status": order.status,
            "orderedAt": rfc3339(order.at),
        });
        if let Some(code) = &order.promo {
            body["promoCode"] = json!(code);
        }
        body
    }

    /// Behaviour events: the session behind each order, browsing without buying
    /// (abandoned carts included) in the last year, newsletter and campaign engagement.
    fn events_json(&self, seed: u64, as_of: DateTime<Utc>) -> Vec<Value> {
        let mut rng = Rng::derive(seed, STREAM_EVENTS, self.index as u64);
        let mut events: Vec<(DateTime<Utc>, &'static str, Value)> = Vec::new();
        let mut sessions = 0;
        let mut session_id = || {
            sessions += 1;
            format!("s-{seed}-{}-{sessions}", self.index + 1)
        };
        let referrer = |rng: &mut Rng| match self.channel {
            "organic_search" | "paid_search" => "search",
            "social" if rng.chance(0.6) => "social",
            "email" => "email",
            _ => "direct",
        };
        let product_view = |p: usize, session: &str, rng: &mut Rng| {
            json!({
                "page": format!("/products/{}", CATALOGUE[p].sku.to_ascii_lowercase()),
                "product_id": CATALOGUE[p].sku,
                "category": CATALOGUE[p].category,
                "referrer": referrer(rng),
                "device": self.device,
                "session_id": session,
            })
        };
        let cart = |p: usize, quantity: i32, session: &str| {
            json!({
                "product_id": CATALOGUE[p].sku,
                "name": CATALOGUE[p].name,
                "price": self.price(p),
                "quantity": quantity,
                "currency": self.currency(),
                "session_id": session,
            })
        };

        for order in &self.orders {
            let session = session_id();
            let mut steps: Vec<(&'static str, Value)> = vec![(
                "page_view",
                json!({"page": format!("/collections/{}", self.category), "referrer": referrer(&mut rng),
                       "device": self.device, "session_id": session}),
            )];
            for (p, q) in &order.lines {
                steps.push(("page_view", product_view(*p, &session, &mut rng)));
                steps.push(("add_to_cart", cart(*p, *q, &session)));
            }
            if rng.chance(0.15) {
                let extra = rng.below(CATALOGUE.len() as u64) as usize;
                steps.push(("add_to_cart", cart(extra, 1, &session)));
                steps.push(("remove_from_cart", cart(extra, 1, &session)));
            }
            let mut purchase = json!({
                "order_id": order.external_id,
                "value": self.order_total(order),
                "currency": self.currency(),
                "item_count": order.lines.len(),
                "session_id": session,
            });
            if let Some(code) = &order.promo {
                purchase["promo_code"] = json!(code);
            }
            // Spread the steps over the minutes before the purchase.
            let lead = rng.between(120, 2400) as i64;
            let n = steps.len() as i64;
            for (k, (kind, props)) in steps.into_iter().enumerate() {
                let at = order.at - TimeDelta::seconds(lead * (n - k as i64) / n);
                events.push((at, kind, props));
            }
            events.push((order.at, "purchase", purchase));
        }

        let recent = std::cmp::max(self.signup, as_of - TimeDelta::days(365));
        let browsing = rng.below(3)
            + (self.orders.len() as u64).min(8) / 2
            + u64::from(self.orders.is_empty());
        for _ in 0..browsing {
            let Some(mut at) = seasonal_instant(&mut rng, recent, as_of) else {
                break;
            };
            let session = session_id();
            let mut step = |rng: &mut Rng, kind: &'static str, props: Value| {
                events.push((at, kind, props));
                at = std::cmp::min(at + TimeDelta::seconds(rng.between(15, 240) as i64), as_of);
            };
            if rng.chance(0.12) {
                let query = *rng.pick(&SEARCHES);
                let results = rng.between(0, 40);
                step(
                    &mut rng,
                    "product_search",
                    json!({"query": query, "results": results, "session_id": session}),
                );
            }
            let mut viewed = rng.below(CATALOGUE.len() as u64) as usize;
            for _ in 0..rng.between(1, 5) {
                viewed = rng.below(CATALOGUE.len() as u64) as usize;
                let props = product_view(viewed, &session, &mut rng);
                step(&mut rng, "page_view", props);
            }
            if rng.chance(0.05) {
                step(
                    &mut rng,
                    "wishlist_add",
                    json!({"product_id": CATALOGUE[viewed].sku, "session_id": session}),
                );
            }
            // Never bought: an abandoned cart, sometimes emptied again.
            if rng.chance(0.35) {
                step(&mut rng, "add_to_cart", cart(viewed, 1, &session));
                if rng.chance(0.25) {
                    step(&mut rng, "remove_from_cart", cart(viewed, 1, &session));
                }
            }
        }

        if self.consent.0 {
            // A monthly newsletter, sent on the 5th at 15:00 UTC, over the last year.
            let mut month = NaiveDate::from_ymd_opt(as_of.year(), as_of.month(), 5);
            for _ in 0..12 {
                let Some(date) = month else { break };
                month = date.checked_sub_months(chrono::Months::new(1));
                let Some(sent) = date.and_hms_opt(15, 0, 0).map(|t| t.and_utc()) else {
                    continue;
                };
                if sent < self.signup || sent >= as_of || !rng.chance(0.28) {
                    continue;
                }
                let campaign = format!("newsletter-{}-{:02}", date.year(), date.month());
                let opened = sent + TimeDelta::seconds(rng.between(600, 36 * 3600) as i64);
                if opened >= as_of {
                    continue;
                }
                events.push((
                    opened,
                    "email_opened",
                    json!({"campaign_id": campaign, "device": self.device}),
                ));
                if rng.chance(0.2) {
                    let clicked = std::cmp::min(
                        opened + TimeDelta::seconds(rng.between(5, 600) as i64),
                        as_of,
                    );
                    let url = format!("/collections/{}", self.category);
                    events.push((
                        clicked,
                        "email_clicked",
                        json!({"campaign_id": campaign, "url": url}),
                    ));
                }
            }
            // Seasonal campaigns that converted: open, click, order.
            for order in &self.orders {
                let Some(code) = &order.promo else { continue };
                let campaign = if code.starts_with("BLACKFRIDAY") {
                    format!("black-friday-{}", order.at.year())
                } else if code.starts_with("HOLIDAY") {
                    format!("holiday-{}", order.at.year())
                } else {
                    continue;
                };
                let clicked = order.at - TimeDelta::seconds(rng.between(300, 3 * 86_400) as i64);
                let opened = clicked - TimeDelta::seconds(rng.between(5, 900) as i64);
                events.push((
                    opened,
                    "email_opened",
                    json!({"campaign_id": campaign, "device": self.device}),
                ));
                events.push((
                    clicked,
                    "email_clicked",
                    json!({"campaign_id": campaign, "url": "/collections/gifts"}),
                ));
                events.push((
                    order.at,
                    "campaign_converted",
                    json!({"campaign_id": campaign, "order_id": order.external_id,
                           "revenue": self.order_total(order), "currency": self.currency()}),
                ));
            }
        }

        events.sort_by_key(|(at, _, _)| *at);
        events
            .into_iter()
            .map(|(at, kind, properties)| {
                json!({
                    "customer_external_id": self.external_id,
                    "event_type": kind,
                    "properties": properties,
                    "timestamp": rfc3339(at),
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// Shape of the data set (printed, so one can see it is realistic)
// ---------------------------------------------------------------------------------

#[derive(Default)]
struct Profile {
    /// Customers by order count: 0, 1, 2-4, 5-9, 10-24, 25+.
    buckets: [u64; 6],
    most_orders: usize,
    orders: u64,
    holiday_orders: u64,
    weekend_orders: u64,
    promo_orders: u64,
    statuses: BTreeMap<&'static str, u64>,
    tiers: BTreeMap<&'static str, u64>,
    /// Spend (counted statuses), minor units, per currency.
    revenue: BTreeMap<&'static str, i64>,
    first_signup: Option<DateTime<Utc>>,
    first_order: Option<DateTime<Utc>>,
}

impl Profile {
    fn add(&mut self, plan: &CustomerPlan) {
        let n = plan.orders.len();
        let bucket = match n {
            0 => 0,
            1 => 1,
            2..=4 => 2,
            5..=9 => 3,
            10..=24 => 4,
            _ => 5,
        };
        self.buckets[bucket] += 1;
        self.most_orders = self.most_orders.max(n);
        *self
            .tiers
            .entry(plan.loyalty_tier().unwrap_or("none"))
            .or_default() += 1;
        self.first_signup = Some(
            self.first_signup
                .map_or(plan.signup, |s| s.min(plan.signup)),
        );
        for order in &plan.orders {
            self.orders += 1;
            self.holiday_orders += u64::from(matches!(order.at.month(), 11 | 12));
            self.weekend_orders +=
                u64::from(matches!(order.at.weekday(), Weekday::Sat | Weekday::Sun));
            self.promo_orders += u64::from(order.promo.is_some());
            *self.statuses.entry(order.status).or_default() += 1;
            if counts_as_spend(order.status) {
                *self.revenue.entry(plan.currency()).or_default() += plan.order_total(order);
            }
            self.first_order = Some(self.first_order.map_or(order.at, |s| s.min(order.at)));
        }
    }

    fn print(&self, customers: usize) {
        let pct = |n: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                100.0 * n as f64 / of as f64
            }
        };
        let c = customers as u64;
        println!("data set:");
        println!(
            "  orders per customer   0: {:.0}%  1: {:.0}%  2-4: {:.0}%  5-9: {:.0}%  10-24: {:.0}%  25+: {:.0}%  (max {})",
            pct(self.buckets[0], c),
            pct(self.buckets[1], c),
            pct(self.buckets[2], c),
            pct(self.buckets[3], c),
            pct(self.buckets[4], c),
            pct(self.buckets[5], c),
            self.most_orders
        );
        println!(
            "  orders in Nov-Dec     {:.0}% (2 of 12 months = 17%); on weekends {:.0}% (2 of 7 days = 29%); with a promo code {:.0}%",
            pct(self.holiday_orders, self.orders),
            pct(self.weekend_orders, self.orders),
            pct(self.promo_orders, self.orders)
        );
        let join = |map: &BTreeMap<&str, u64>| {
            map.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  order statuses        {}", join(&self.statuses));
        println!("  loyalty tiers         {}", join(&self.tiers));
        let revenue: Vec<String> = self
            .revenue
            .iter()
            .map(|(currency, minor)| format!("{currency} {:.2}", *minor as f64 / 100.0))
            .collect();
        println!("  revenue (net)         {}", revenue.join(", "));
        if let (Some(signup), Some(order)) = (self.first_signup, self.first_order) {
            println!(
                "  history from          sign-ups {}, orders {}",
                signup.date_naive(),
                order.date_naive()
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Customers,
    Orders,
    Events,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Customers => "customers",
            Kind::Orders => "orders",
            Kind::Events => "events",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Customers => "/api/v2/cdp/customers/batch",
            Kind::Orders => "/api/v2/cdp/orders/batch",
            Kind::Events => "/api/v2/cdp/events/batch",
        }
    }

    /// What names one row in a failure report.
    fn identity(self, row: &Value) -> String {
        let field = |key: &str| {
            row.get(key)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        match self {
            Kind::Customers => field("email"),
            Kind::Orders => field("externalId"),
            Kind::Events => format!(
                "{} of {} at {}",
                field("event_type"),
                field("customer_external_id"),
                field("timestamp")
            ),
        }
    }
}

struct Batch {
    kind: Kind,
    index: usize,
    rows: Vec<Value>,
    body: Vec<u8>,
    key: String,
    /// Customers generated up to and including this batch (for progress).
    customers_through: usize,
}

/// Produces one kind's batches lazily, customer by customer, so memory stays bounded
/// whatever `--customers` is.
struct Batcher {
    kind: Kind,
    seed: u64,
    as_of: DateTime<Utc>,
    customers: usize,
    next_customer: usize,
    pending: VecDeque<Value>,
    next_index: usize,
    profile: Option<Profile>,
}

impl Batcher {
    fn new(kind: Kind, options: &Options) -> Self {
        Self {
            kind,
            seed: options.seed,
            as_of: options.as_of,
            customers: options.customers,
            next_customer: 0,
            pending: VecDeque::new(),
            next_index: 0,
            profile: (kind == Kind::Orders).then(Profile::default),
        }
    }

    fn next_batch(&mut self) -> Result<Option<Batch>> {
        while self.pending.len() < BATCH && self.next_customer < self.customers {
            let plan = CustomerPlan::new(self.seed, self.as_of, self.next_customer);
            self.next_customer += 1;
            if let Some(profile) = &mut self.profile {
                profile.add(&plan);
            }
            match self.kind {
                Kind::Customers => self.pending.push_back(plan.customer_json()),
                Kind::Orders => self
                    .pending
                    .extend(plan.orders.iter().map(|o| plan.order_json(o))),
                Kind::Events => self.pending.extend(plan.events_json(self.seed, self.as_of)),
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let take = self.pending.len().min(BATCH);
        let rows: Vec<Value> = self.pending.drain(..take).collect();
        let body = serde_json::to_vec(&BTreeMap::from([(self.kind.name(), &rows)]))?;
        let index = self.next_index;
        self.next_index += 1;
        // Same seed, kind, position and content: same key, so a re-run replays. Any
        // other content gets another key instead of a 422 for a reused one.
        let key = format!(
            "demo-{}-{}-{index:05}-{:016x}",
            self.seed,
            self.kind.name(),
            fnv1a(&body)
        );
        // Rows still pending belong to the last customer generated, who is not done yet.
        let customers_through = if self.pending.is_empty() {
            self.next_customer
        } else {
            self.next_customer - 1
        };
        Ok(Some(Batch {
            kind: self.kind,
            index,
            rows,
            body,
            key,
            customers_through,
        }))
    }
}

// ---------------------------------------------------------------------------------
// Sending and tallying
// ---------------------------------------------------------------------------------

struct Failure {
    kind: Kind,
    what: String,
    status: u64,
    code: String,
    error: String,
    details: Value,
}

#[derive(Default)]
struct Tally {
    rows: u64,
    created: u64,
    updated: u64,
    already_present: u64,
    failed: u64,
    batches: u64,
    replayed: u64,
    retries: u64,
}

#[derive(Default)]
struct Totals {
    per_kind: BTreeMap<&'static str, Tally>,
    failures: Vec<Failure>,
}

struct Client {
    http: reqwest::Client,
    gateway: String,
    token: String,
}

async fn send(client: &Client, batch: &Batch, totals: &Mutex<Totals>) -> Result<()> {
    let url = format!("{}{}", client.gateway, batch.kind.path());
    let mut retries = 0;
    let mut attempt = 0;
    let (status, replayed, text) = loop {
        attempt += 1;
        let result = client
            .http
            .post(&url)
            .bearer_auth(&client.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &batch.key)
            .body(batch.body.clone())
            .send()
            .await;
        let retry_because = match result {
            Err(e) => format!("{e}"),
            Ok(response) => {
                let status = response.status().as_u16();
                let replayed = response.headers().contains_key("idempotent-replayed");
                let text = response.text().await.unwrap_or_default();
                let in_progress = status == 409 && text.contains("idempotency_in_progress");
                if !(matches!(status, 429 | 500 | 502 | 503 | 504) || in_progress) {
                    break (status, replayed, text);
                }
                format!("HTTP {status}: {}", truncate(&text, 300))
            }
        };
        if attempt >= ATTEMPTS {
            bail!(
                "{} batch {} failed {ATTEMPTS} times, last: {retry_because}. The Idempotency-Key makes \
                 re-running safe once the stack is healthy",
                batch.kind.name(),
                batch.index
            );
        }
        retries += 1;
        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
    };

    let mut totals = totals.lock().map_err(|_| anyhow!("tally lock poisoned"))?;
    let totals = &mut *totals;
    let tally = totals.per_kind.entry(batch.kind.name()).or_default();
    tally.batches += 1;
    tally.rows += batch.rows.len() as u64;
    tally.replayed += u64::from(replayed);
    tally.retries += retries;
    if status != 200 {
        // The whole batch was refused (400 invalid body, 413, 401...): every row failed.
        tally.failed += batch.rows.len() as u64;
        let body: Value =
            serde_json::from_str(&text).unwrap_or(Value::String(truncate(&text, 500)));
        totals.failures.push(Failure {
            kind: batch.kind,
            what: format!(
                "the whole batch {} ({} rows)",
                batch.index,
                batch.rows.len()
            ),
            status: u64::from(status),
            code: body
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            error: body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            details: body.get("details").cloned().unwrap_or(body),
        });
        return Ok(());
    }
    let body: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} batch {}: the 200 response is not JSON: {}",
            batch.kind.name(),
            batch.index,
            truncate(&text, 300)
        )
    })?;
    let results = body["data"]["results"].as_array().with_context(|| {
        format!(
            "{} batch {}: no data.results in {}",
            batch.kind.name(),
            batch.index,
            truncate(&text, 300)
        )
    })?;
    if results.len() != batch.rows.len() {
        bail!(
            "{} batch {}: {} results for {} rows",
            batch.kind.name(),
            batch.index,
            results.len(),
            batch.rows.len()
        );
    }
    for result in results {
        let status = result["status"].as_u64().unwrap_or(0);
        let code = result["code"].as_str().unwrap_or("");
        match (status, code) {
            (201, _) => tally.created += 1,
            (200, _) => tally.updated += 1,
            // Sent before (under another key): the order is there.
            (409, "duplicate_order") => tally.already_present += 1,
            _ => {
                tally.failed += 1;
                let index = result["index"].as_u64().unwrap_or(u64::MAX) as usize;
                totals.failures.push(Failure {
                    kind: batch.kind,
                    what: batch
                        .rows
                        .get(index)
                        .map_or_else(|| format!("row {index}"), |row| batch.kind.identity(row)),
                    status,
                    code: code.to_owned(),
                    error: result["error"].as_str().unwrap_or("").to_owned(),
                    details: result["details"].clone(),
                });
            }
        }
    }
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------------
// Progress on stderr
// ---------------------------------------------------------------------------------

struct Progress {
    label: &'static str,
    customers: usize,
    through: AtomicUsize,
    rows: AtomicU64,
    done: AtomicBool,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn line(&self) -> String {
        let through = self.through.load(Ordering::Relaxed).min(self.customers);
        let fraction = if self.customers == 0 {
            1.0
        } else {
            through as f64 / self.customers as f64
        };
        let width = 28;
        let filled = (fraction * width as f64).round() as usize;
        let rows = self.rows.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{:<9} [{}{}] {:>3.0}%  {:>8} rows  {:>7.0} rows/s  {:>5.1} s",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            fraction * 100.0,
            rows,
            rows as f64 / secs,
            secs
        )
    }

    /// Redraws the line in place (a terminal only) until the phase ends.
    async fn draw(self: Arc<Self>) {
        while !self.done.load(Ordering::Relaxed) {
            if self.terminal {
                eprint!("\r{}", self.line());
                let _ = std::io::stderr().flush();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        eprintln!("{}{}", if self.terminal { "\r" } else { "" }, self.line());
    }
}

// ---------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------

struct Options {
    customers: usize,
    seed: u64,
    concurrency: usize,
    as_of: DateTime<Utc>,
    /// `demo` uses the stack's DEV_TOKEN; any other tenant gets a token minted here.
    tenant: String,
    dry_run: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            customers: DEFAULT_CUSTOMERS,
            seed: DEFAULT_SEED,
            concurrency: DEFAULT_CONCURRENCY,
            as_of: midnight(Utc::now()),
            tenant: "demo".to_owned(),
            dry_run: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))
            };
            let number = |text: String| -> Result<u64> {
                text.replace('_', "")
                    .parse()
                    .map_err(|_| anyhow!("{flag} takes a whole number, got {text:?}"))
            };
            match flag {
                "--customers" => options.customers = number(value()?)? as usize,
                "--seed" => options.seed = number(value()?)?,
                "--concurrency" => options.concurrency = (number(value()?)? as usize).clamp(1, 64),
                "--as-of" => {
                    let text = value()?;
                    let date = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|_| {
                        anyhow!("--as-of takes a date like 2025-01-31, got {text:?}")
                    })?;
                    options.as_of = date.and_time(chrono::NaiveTime::MIN).and_utc();
                    if options.as_of > Utc::now() {
                        bail!("--as-of {text} is in the future; the API refuses future dates");
                    }
                }
                "--tenant" => options.tenant = value()?,
                "--dry-run" if inline.is_none() => options.dry_run = true,
                "-h" | "--help" => bail!("{USAGE}"),
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        if options.customers == 0 {
            bail!("--customers must be at least 1");
        }
        Ok(options)
    }
}

/// `cargo xtask demo [--customers N] [--seed S] [--concurrency C] [--as-of YYYY-MM-DD] [--dry-run]`
pub fn command(args: &[String]) -> Result<ExitCode> {
    let options = Options::parse(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> Result<ExitCode> {
    let client = if options.dry_run {
        None
    } else {
        let env = StackEnv::load()?;
        let http = mkt_http_client::builder()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(options.concurrency)
            .build()?;
        let gateway = env.get("GATEWAY_URL")?.trim_end_matches('/').to_owned();
        check_gateway(&http, &gateway).await?;
        let token = if options.tenant == "demo" {
            env.get("DEV_TOKEN")?.to_owned()
        } else {
            let ttl = Duration::from_secs(12 * 3600);
            crate::token::mint(
                env.get("JWT_HS256_SECRET")?,
                &options.tenant,
                &["ingest".to_owned()],
                ttl,
            )?
        };
        Some(Arc::new(Client {
            http,
            gateway,
            token,
        }))
    };
    eprintln!(
        "{} a store of {} customers (seed {}, as of {}) {}",
        if options.dry_run {
            "generating"
        } else {
            "loading"
        },
        options.customers,
        options.seed,
        options.as_of.date_naive(),
        client.as_ref().map_or_else(
            || "without sending anything (--dry-run)".to_owned(),
            |c| format!(
                "through {} as tenant {}, {} requests at a time",
                c.gateway, options.tenant, options.concurrency
            )
        ),
    );
    let started = Instant::now();
    let totals = Arc::new(Mutex::new(Totals::default()));
    let mut profile = None;
    for kind in [Kind::Customers, Kind::Orders, Kind::Events] {
        let batcher = Arc::new(Mutex::new(Batcher::new(kind, &options)));
        let progress = Arc::new(Progress {
            label: kind.name(),
            customers: options.customers,
            through: AtomicUsize::new(0),
            rows: AtomicU64::new(0),
            done: AtomicBool::new(false),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        });
        let drawing = tokio::spawn(progress.clone().draw());
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..options.concurrency {
            let (batcher, progress, totals, client) = (
                batcher.clone(),
                progress.clone(),
                totals.clone(),
                client.clone(),
            );
            workers.spawn(async move {
                loop {
                    let batch = batcher
                        .lock()
                        .map_err(|_| anyhow!("batcher lock poisoned"))?
                        .next_batch()?;
                    let Some(batch) = batch else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    match &client {
                        Some(client) => send(client, &batch, &totals).await?,
                        None => {
                            let mut totals =
                                totals.lock().map_err(|_| anyhow!("tally lock poisoned"))?;
                            let tally = totals.per_kind.entry(kind.name()).or_default();
                            tally.batches += 1;
                            tally.rows += batch.rows.len() as u64;
                        }
                    }
                    progress
                        .rows
                        .fetch_add(batch.rows.len() as u64, Ordering::Relaxed);
                    progress
                        .through
                        .fetch_max(batch.customers_through, Ordering::Relaxed);
                }
            });
        }
        let mut outcome = Ok(());
        while let Some(joined) = workers.join_next().await {
            let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result
                && outcome.is_ok()
            {
                outcome = Err(e);
                workers.abort_all();
            }
        }
        progress.finish();
        drawing.abort();
        outcome?;
        if kind == Kind::Orders {
            profile = batcher
                .lock()
                .map_err(|_| anyhow!("batcher lock poisoned"))?
                .profile
                .take();
        }
    }
    let elapsed = started.elapsed();
    let totals = std::mem::take(&mut *totals.lock().map_err(|_| anyhow!("tally lock poisoned"))?);
    print_summary(&options, client.as_deref(), &totals, elapsed);
    if let Some(profile) = profile {
        profile.print(options.customers);
    }
    if totals.failures.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

fn print_summary(options: &Options, client: Option<&Client>, totals: &Totals, elapsed: Duration) {
    let rows: u64 = totals.per_kind.values().map(|t| t.rows).sum();
    let secs = elapsed.as_secs_f64();
    match client {
        Some(client) => println!(
            "demo store loaded into tenant {} through {} (seed {}, as of {})",
            options.tenant,
            client.gateway,
            options.seed,
            options.as_of.date_naive()
        ),
        None => println!(
            "dry run: nothing was sent (seed {}, as of {})",
            options.seed,
            options.as_of.date_naive()
        ),
    }
    for kind in [Kind::Customers, Kind::Orders, Kind::Events] {
        let Some(t) = totals.per_kind.get(kind.name()) else {
            continue;
        };
        let mut parts = vec![format!("{} created", t.created)];
        if t.updated > 0 {
            parts.push(format!("{} updated", t.updated));
        }
        if kind == Kind::Orders {
            parts.push(format!("{} already present", t.already_present));
        }
        parts.push(format!("{} failed", t.failed));
        if client.is_none() {
            parts = vec!["not sent".to_owned()];
        }
        println!(
            "  {:<10} {:>8}  ({})  in {} batches{}{}",
            kind.name(),
            t.rows,
            parts.join(", "),
            t.batches,
            if t.replayed > 0 {
                format!(", {} replayed by Idempotency-Key", t.replayed)
            } else {
                String::new()
            },
            if t.retries > 0 {
                format!(", {} retried", t.retries)
            } else {
                String::new()
            },
        );
    }
    println!(
        "  {:<10} {:>8}  in {:.1} s = {:.0} rows/s",
        "total",
        rows,
        secs,
        rows as f64 / secs.max(1e-3)
    );
    if totals.per_kind.values().any(|t| t.replayed > 0) {
        println!(
            "  (a replayed batch's counts are its first response, stored with the Idempotency-Key: \
             nothing was written twice)"
        );
    }
    if !totals.failures.is_empty() {
        println!("  FAILURES: {} (first 20 below)", totals.failures.len());
        for failure in totals.failures.iter().take(20) {
            println!(
                "    {} {}: {} {} {} {}",
                failure.kind.name(),
                failure.what,
                failure.status,
                failure.code,
                failure.error,
                if failure.details.is_null() {
                    String::new()
                } else {
                    failure.details.to_string()
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_of() -> Result<DateTime<Utc>> {
        Ok(NaiveDate::from_ymd_opt(2025, 6, 1)
            .context("date")?
            .and_time(chrono::NaiveTime::MIN)
            .and_utc())
    }

    #[test]
    fn the_same_seed_gives_the_same_store() -> Result<()> {
        let (a, b) = (
            CustomerPlan::new(7, as_of()?, 12),
            CustomerPlan::new(7, as_of()?, 12),
        );
        assert_eq!(a.customer_json(), b.customer_json());
        assert_eq!(a.events_json(7, as_of()?), b.events_json(7, as_of()?));
        assert_ne!(
            a.customer_json(),
            CustomerPlan::new(8, as_of()?, 12).customer_json()
        );
        Ok(())
    }

    #[test]
    fn orders_satisfy_the_api_money_and_time_rules() -> Result<()> {
        let as_of = as_of()?;
        for index in 0..300 {
            let plan = CustomerPlan::new(1, as_of, index);
            for order in &plan.orders {
                let body = plan.order_json(order);
                let items = body["items"].as_array().context("items")?;
                assert!(!items.is_empty());
                let sum: i64 = items
                    .iter()
                    .map(|i| i["total"].as_i64().unwrap_or(-1))
                    .sum();
                assert_eq!(body["totalAmount"].as_i64(), Some(sum));
                for item in items {
                    assert_eq!(
                        item["price"]
                            .as_i64()
                            .map(|p| p * item["quantity"].as_i64().unwrap_or(0)),
                        item["total"].as_i64()
                    );
                }
                assert!(order.at < as_of && order.at >= plan.signup);
            }
            for event in plan.events_json(1, as_of) {
                let at: DateTime<Utc> =
                    event["timestamp"].as_str().context("timestamp")?.parse()?;
                assert!(at <= as_of, "{event}");
            }
        }
        Ok(())
    }

    #[test]
    fn prices_convert_and_keep_their_ending() {
        assert_eq!(local_price(2499, Country::Us), 2499);
        assert_eq!(local_price(2499, Country::Ca), 3399);
        assert_eq!(local_price(5000, Country::Uk), 4000);
    }

    #[test]
    fn the_rng_is_stable() {
        let mut rng = Rng::derive(42, 1, 0);
        let first = rng.next_u64();
        assert_eq!(Rng::derive(42, 1, 0).next_u64(), first);
        assert_ne!(Rng::derive(42, 1, 1).next_u64(), first);
    }
}
