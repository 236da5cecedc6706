//! Who the customers are: countries and their currencies, places, names, email
//! domains, acquisition channels, devices and searches, with their weights.

use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Country {
    Us,
    Ca,
    Uk,
    De,
    Fr,
    Au,
    Nl,
}

impl Country {
    pub(super) fn name(self) -> &'static str {
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

    pub(super) fn currency(self) -> &'static str {
        match self {
            Country::Us => "USD",
            Country::Ca => "CAD",
            Country::Uk => "GBP",
            Country::De | Country::Fr | Country::Nl => "EUR",
            Country::Au => "AUD",
        }
    }

    /// Rough price-list factor from USD.
    pub(super) fn price_factor(self) -> f64 {
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
    pub(super) fn phone(self, rng: &mut Rng, area: &str) -> String {
        match self {
            Country::Us | Country::Ca => format!("({area}) 555-01{:02}", rng.below(100)),
            Country::Uk => format!("+44 20 7946 0{:03}", rng.below(1000)),
            Country::De => format!("+49 30 2390 {:04}", rng.below(10_000)),
            Country::Fr => format!("+33 1 99 00 {:02} {:02}", rng.below(100), rng.below(100)),
            Country::Au => format!("+61 2 5550 {:04}", rng.below(10_000)),
            Country::Nl => format!("+31 20 799 {:04}", rng.below(10_000)),
        }
    }

    pub(super) fn street(self, rng: &mut Rng) -> String {
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

pub(super) struct Place {
    pub(super) city: &'static str,
    pub(super) state: &'static str,
    pub(super) zip: &'static str,
    pub(super) country: Country,
    /// Phone area code (North America).
    pub(super) area: &'static str,
    /// Share of customers.
    pub(super) weight: f64,
}

pub(super) const fn place(
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

pub(super) const PLACES: [Place; 40] = [
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

pub(super) const FIRST_NAMES: [&str; 64] = [
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

pub(super) const LAST_NAMES: [&str; 64] = [
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
pub(super) const EMAIL_DOMAINS: [(&str, f64); 7] = [
    ("gmail.example", 40.0),
    ("yahoo.example", 12.0),
    ("outlook.example", 12.0),
    ("icloud.example", 10.0),
    ("hotmail.example", 6.0),
    ("proton.example", 3.0),
    ("fastmail.example", 2.0),
];

pub(super) const CHANNELS: [(&str, f64); 6] = [
    ("organic_search", 30.0),
    ("paid_search", 20.0),
    ("social", 18.0),
    ("referral", 10.0),
    ("email", 7.0),
    ("direct", 15.0),
];

pub(super) const DEVICES: [(&str, f64); 3] = [("mobile", 58.0), ("desktop", 35.0), ("tablet", 7.0)];

pub(super) const SEARCHES: [&str; 12] = [
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

pub(super) fn weights<T>(table: &[(T, f64)]) -> Vec<f64> {
    table.iter().map(|(_, w)| *w).collect()
}

pub(super) fn pick_weighted<T: Copy>(rng: &mut Rng, table: &[(T, f64)]) -> T {
    table[rng.weighted(&weights(table))].0
}
