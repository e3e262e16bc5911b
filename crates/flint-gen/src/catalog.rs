//! The fixed provider catalog (cities, organizations, practitioners) and the name tables.
//!
//! The catalog does not depend on the seed: populations generated with different seeds share the
//! same 20 Organizations and 50 Practitioners (ids `fg-org-01`…, `fg-prac-001`…), so they can be
//! loaded into one server. The batch bundle `0-organizations.json` PUTs them.

use crate::codes::{NPI, ORG_PROV};
use crate::json::{Obj, Style, object};
use std::sync::OnceLock;

/// A city: name, state, ZIP prefix (3 digits), time-zone offset in minutes east of UTC.
#[derive(Clone, Copy, Debug)]
pub struct City {
    /// City name.
    pub name: &'static str,
    /// Two-letter state code.
    pub state: &'static str,
    /// First three digits of the postal codes.
    pub zip3: &'static str,
    /// Standard time offset, minutes east of UTC.
    pub tz_min: i32,
}

/// The cities patients and providers live in.
pub const CITIES: [City; 10] = [
    City {
        name: "Boston",
        state: "MA",
        zip3: "021",
        tz_min: -300,
    },
    City {
        name: "Worcester",
        state: "MA",
        zip3: "016",
        tz_min: -300,
    },
    City {
        name: "Springfield",
        state: "MA",
        zip3: "011",
        tz_min: -300,
    },
    City {
        name: "Hartford",
        state: "CT",
        zip3: "061",
        tz_min: -300,
    },
    City {
        name: "Providence",
        state: "RI",
        zip3: "029",
        tz_min: -300,
    },
    City {
        name: "Columbus",
        state: "OH",
        zip3: "432",
        tz_min: -300,
    },
    City {
        name: "Chicago",
        state: "IL",
        zip3: "606",
        tz_min: -360,
    },
    City {
        name: "Denver",
        state: "CO",
        zip3: "802",
        tz_min: -420,
    },
    City {
        name: "Phoenix",
        state: "AZ",
        zip3: "850",
        tz_min: -420,
    },
    City {
        name: "Seattle",
        state: "WA",
        zip3: "981",
        tz_min: -480,
    },
];

/// Number of organizations (a clinic and a hospital per city).
pub const ORGS: usize = 2 * CITIES.len();
/// Number of practitioners (3 at each clinic, 2 at each hospital).
pub const PRACTITIONERS: usize = 5 * CITIES.len();

const CLINIC_SUFFIX: [&str; 10] = [
    "Family Medicine",
    "Primary Care Associates",
    "Community Health Center",
    "Internal Medicine Group",
    "Medical Associates",
    "Family Practice",
    "Neighborhood Health",
    "Primary Care",
    "Health Partners",
    "Physicians Group",
];

const STREETS: [&str; 24] = [
    "Maple",
    "Oak",
    "Pine",
    "Cedar",
    "Elm",
    "Washington",
    "Lake",
    "Hill",
    "Park",
    "Main",
    "Church",
    "Walnut",
    "Spring",
    "Chestnut",
    "Highland",
    "Franklin",
    "Jefferson",
    "Lincoln",
    "Madison",
    "Prospect",
    "River",
    "Sunset",
    "Willow",
    "Mill",
];
const STREET_KINDS: [&str; 6] = ["Street", "Avenue", "Road", "Lane", "Drive", "Court"];

/// Male given names.
pub const MALE_NAMES: [&str; 40] = [
    "James",
    "John",
    "Robert",
    "Michael",
    "William",
    "David",
    "Richard",
    "Joseph",
    "Thomas",
    "Charles",
    "Christopher",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Paul",
    "Andrew",
    "Joshua",
    "Kenneth",
    "Kevin",
    "Brian",
    "George",
    "Timothy",
    "Ronald",
    "Edward",
    "Jason",
    "Jeffrey",
    "Ryan",
    "Jacob",
    "Gary",
    "Nicholas",
    "Eric",
    "Jonathan",
    "Stephen",
    "Carlos",
    "Luis",
    "Wei",
    "Omar",
];
/// Female given names.
pub const FEMALE_NAMES: [&str; 40] = [
    "Mary",
    "Patricia",
    "Jennifer",
    "Linda",
    "Elizabeth",
    "Barbara",
    "Susan",
    "Jessica",
    "Sarah",
    "Karen",
    "Lisa",
    "Nancy",
    "Betty",
    "Margaret",
    "Sandra",
    "Ashley",
    "Kimberly",
    "Emily",
    "Donna",
    "Michelle",
    "Carol",
    "Amanda",
    "Dorothy",
    "Melissa",
    "Deborah",
    "Stephanie",
    "Rebecca",
    "Sharon",
    "Laura",
    "Cynthia",
    "Kathleen",
    "Amy",
    "Angela",
    "Shirley",
    "Anna",
    "Maria",
    "Sofia",
    "Mei",
    "Aisha",
    "Priya",
];
/// Family names.
pub const FAMILY_NAMES: [&str; 60] = [
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
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Chen",
    "Patel",
    "Kim",
    "Murphy",
    "O'Brien",
    "Sullivan",
    "Kowalski",
    "Schmidt",
    "Rossi",
    "Cohen",
];

/// A street address line from two random draws.
pub fn street_line(number: u64, street: u64) -> String {
    let s = STREETS[(street % STREETS.len() as u64) as usize];
    let k = STREET_KINDS[(street / STREETS.len() as u64 % STREET_KINDS.len() as u64) as usize];
    format!("{} {s} {k}", 10 + number % 9000)
}

/// Id of organization `i` (0-based).
pub fn org_id(i: usize) -> String {
    format!("fg-org-{:02}", i + 1)
}

/// Id of practitioner `i` (0-based).
pub fn practitioner_id(i: usize) -> String {
    format!("fg-prac-{:03}", i + 1)
}

/// The clinic of city `c`.
pub fn clinic_of(c: usize) -> usize {
    2 * c
}

/// The hospital of city `c`.
pub fn hospital_of(c: usize) -> usize {
    2 * c + 1
}

/// The practitioners of organization `org` (3 for a clinic, 2 for a hospital).
pub fn practitioners_of(org: usize) -> std::ops::Range<usize> {
    let c = org / 2;
    if org.is_multiple_of(2) {
        5 * c..5 * c + 3
    } else {
        5 * c + 3..5 * c + 5
    }
}

/// Organization `i`'s name.
pub fn org_name(i: usize) -> String {
    let city = &CITIES[i / 2];
    if i.is_multiple_of(2) {
        format!("{} {}", city.name, CLINIC_SUFFIX[i / 2])
    } else {
        format!("{} General Hospital", city.name)
    }
}

/// Practitioner `i`'s (given, family, female).
pub fn practitioner_name(i: usize) -> (&'static str, &'static str, bool) {
    let female = i % 2 == 1;
    let given = if female {
        FEMALE_NAMES[(i * 7 + 3) % 40]
    } else {
        MALE_NAMES[(i * 11 + 5) % 40]
    };
    (given, FAMILY_NAMES[(i * 13 + 1) % 60], female)
}

/// Practitioner `i`'s display name ("Dr. Given Family").
pub fn practitioner_display(i: usize) -> String {
    let (g, f, _) = practitioner_name(i);
    format!("Dr. {g} {f}")
}

/// The NPI of organization `i` (10 digits, 999-prefixed test range).
fn org_npi(i: usize) -> String {
    format!("99981{:05}", i + 1)
}

/// The NPI of practitioner `i`.
fn practitioner_npi(i: usize) -> String {
    format!("99991{:05}", i + 1)
}

/// The `address` field of organization `i`; its practitioners share it.
fn org_address(o: &mut Obj, i: usize) {
    let city = &CITIES[i / 2];
    let line = street_line(100 + 37 * i as u64, 5 * i as u64 + 2);
    let zip = format!("{}{:02}", city.zip3, (i * 17) % 100);
    o.arr("address", |a| {
        a.obj(|o| {
            o.arr("line", |a| a.str(&line));
            o.str("city", city.name);
            o.str("state", city.state);
            o.str("postalCode", &zip);
            o.str("country", "US");
        })
    });
}

/// A catalog resource as JSON: its type, `id`, NPI identifier and `active`, then the fields `f`
/// adds.
fn catalog_json(ty: &str, id: &str, npi: &str, f: impl FnOnce(&mut Obj)) -> String {
    let mut s = String::with_capacity(600);
    object(&mut s, Style::Ndjson, |o| {
        o.str("resourceType", ty);
        o.str("id", id);
        o.arr("identifier", |a| {
            a.obj(|o| {
                o.str("system", NPI);
                o.str("value", npi);
            })
        });
        o.bool("active", true);
        f(o);
    });
    s
}

/// Organization `i` as JSON (with `id`).
pub fn organization_json(i: usize) -> String {
    catalog_json("Organization", &org_id(i), &org_npi(i), |o| {
        o.concepts("type", &ORG_PROV);
        o.str("name", &org_name(i));
        o.arr("telecom", |a| {
            a.obj(|o| {
                o.str("system", "phone");
                o.str("value", &format!("555-{:03}-{:04}", 100 + i, 1000 + 37 * i));
                o.str("use", "work");
            })
        });
        org_address(o, i);
    })
}

/// Practitioner `i` as JSON (with `id`).
pub fn practitioner_json(i: usize) -> String {
    let (given, family, female) = practitioner_name(i);
    let org = if i % 5 < 3 {
        clinic_of(i / 5)
    } else {
        hospital_of(i / 5)
    };
    let email = format!(
        "{}.{}@example.org",
        given.to_lowercase(),
        family.to_lowercase().replace('\'', "")
    );
    let (id, npi) = (practitioner_id(i), practitioner_npi(i));
    catalog_json("Practitioner", &id, &npi, |o| {
        o.arr("name", |a| {
            a.obj(|o| {
                o.str("family", family);
                o.arr("given", |a| a.str(given));
                o.arr("prefix", |a| a.str("Dr."));
            })
        });
        o.arr("telecom", |a| {
            a.obj(|o| {
                o.str("system", "email");
                o.str("value", &email);
                o.str("use", "work");
            })
        });
        org_address(o, org);
        o.str("gender", if female { "female" } else { "male" });
    })
}

/// The batch bundle that PUTs every Organization and Practitioner.
pub fn catalog_bundle() -> String {
    let mut s = String::with_capacity(64 * 1024);
    s.push_str(r#"{"resourceType":"Bundle","type":"batch","entry":["#);
    let mut first = true;
    let mut entry = |s: &mut String, ty: &str, id: &str, json: &str| {
        if !first {
            s.push(',');
        }
        first = false;
        s.push_str(r#"{"resource":"#);
        s.push_str(json);
        s.push_str(r#","request":{"method":"PUT","url":""#);
        s.push_str(ty);
        s.push('/');
        s.push_str(id);
        s.push_str("\"}}");
    };
    for i in 0..ORGS {
        entry(&mut s, "Organization", &org_id(i), &organization_json(i));
    }
    for i in 0..PRACTITIONERS {
        entry(
            &mut s,
            "Practitioner",
            &practitioner_id(i),
            &practitioner_json(i),
        );
    }
    s.push_str("]}");
    s
}

/// Ids and display names of the catalog, computed once.
pub struct Names {
    /// Organization ids.
    pub org_ids: Vec<String>,
    /// Organization names.
    pub org_names: Vec<String>,
    /// Practitioner ids.
    pub practitioner_ids: Vec<String>,
    /// Practitioner display names.
    pub practitioner_names: Vec<String>,
}

/// The shared catalog name table.
pub fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| Names {
        org_ids: (0..ORGS).map(org_id).collect(),
        org_names: (0..ORGS).map(org_name).collect(),
        practitioner_ids: (0..PRACTITIONERS).map(practitioner_id).collect(),
        practitioner_names: (0..PRACTITIONERS).map(practitioner_display).collect(),
    })
}
