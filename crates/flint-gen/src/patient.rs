//! One patient's record: demographics, chronic conditions with onsets, a timeline of encounters
//! in the ten-year window, and the FHIR resources each encounter produces.
//!
//! The record depends only on `(seed, index)`: the patient draws everything from ChaCha8 stream
//! `index` of the seed, in a fixed order.

use crate::catalog::{self, CITIES, FAMILY_NAMES, FEMALE_NAMES, MALE_NAMES};
use crate::codes::*;
use crate::json::{Obj, Ref, Style, base64, object};
use crate::rng::{self, Id, Rng};
use crate::time::{self, DAY, Window, YEAR};

/// One generated resource: its type, id (also the `urn:uuid` of its bundle entry) and JSON.
pub struct Resource {
    /// The resource type.
    pub ty: &'static str,
    /// The resource id.
    pub id: Id,
    /// The resource as compact JSON.
    pub json: String,
}

/// Generates patient `index` (1-based) of the population of `seed`.
pub fn generate(seed: u64, index: u64, window: &Window, style: Style) -> Vec<Resource> {
    let mut g = Gen::new(seed, index, *window, style);
    g.run();
    g.sink.out
}

/// The resources of one patient, as they are written, and the JSON style they are written in.
struct Sink {
    style: Style,
    out: Vec<Resource>,
}

impl Sink {
    /// Writes resource `id` of type `ty`: `f` adds the fields after `resourceType` (and `id`).
    fn emit(&mut self, ty: &'static str, id: Id, capacity: usize, f: impl FnOnce(&mut Obj)) {
        let mut json = String::with_capacity(capacity);
        object(&mut json, self.style, |o| {
            o.str("resourceType", ty);
            if self.style == Style::Ndjson {
                o.str("id", id.as_str());
            }
            f(o);
        });
        self.out.push(Resource { ty, id, json });
    }
}

/// The fields a Claim or an ExplanationOfBenefit for encounter `enc` opens with: status, type,
/// use, patient, and the encounter's period as billable period and its end as creation time.
fn billing_head(o: &mut Obj, ty: &Code, patient: &Id, enc: &Enc) {
    o.str("status", "active");
    o.concept("type", ty);
    o.str("use", "claim");
    o.reference("patient", Ref::Local("Patient", patient));
    o.period("billablePeriod", &enc.start_s, &enc.end_s);
    o.str("created", &enc.end_s);
}

/// The opening of a Claim for encounter `enc`: [`billing_head`], then the encounter's
/// organization as provider and a normal priority.
fn claim_head(o: &mut Obj, ty: &Code, patient: &Id, enc: &Enc) {
    let names = catalog::names();
    billing_head(o, ty, patient, enc);
    o.reference_display(
        "provider",
        Ref::Shared("Organization", &names.org_ids[enc.org]),
        &names.org_names[enc.org],
    );
    o.codings_only("priority", &PRIORITY_NORMAL);
}

/// A Claim's insurance: the patient's payer, the one (focal) coverage.
fn claim_insurance(o: &mut Obj, payer: &str) {
    o.arr("insurance", |a| {
        a.obj(|o| {
            o.int("sequence", 1);
            o.bool("focal", true);
            o.obj("coverage", |o| o.str("display", payer));
        })
    });
}

/// Chronic disease kinds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Hypertension,
    Prediabetes,
    Diabetes,
    Hyperlipidemia,
    Anemia,
    Asthma,
    Copd,
    Chd,
    Afib,
    Ckd,
    BackPain,
    NeckPain,
    OaKnee,
    ChronicSinusitis,
    Osteoporosis,
}

impl Kind {
    /// Whether the condition brings the patient back for regular follow-up visits.
    fn follow_up(self) -> bool {
        matches!(
            self,
            Kind::Hypertension
                | Kind::Diabetes
                | Kind::Prediabetes
                | Kind::Hyperlipidemia
                | Kind::Chd
                | Kind::Afib
                | Kind::Ckd
                | Kind::Copd
                | Kind::Asthma
                | Kind::BackPain
                | Kind::NeckPain
        )
    }
}

struct Chronic {
    kind: Kind,
    code: Code,
    onset: i64,
    cond: Option<Id>,
    meds: Vec<Code>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Smoking {
    Never,
    Former,
    Current,
}

/// Demographics and physiological baselines (per-patient offsets around population means).
struct Person {
    female: bool,
    birth: i64,
    death: Option<i64>,
    given: &'static str,
    family: &'static str,
    tz: i32,
    city: usize,
    line: String,
    zip: String,
    phone: String,
    ssn: String,
    marital: usize,
    spanish: bool,
    clinic: usize,
    hospital: usize,
    pcp: usize,
    payer: &'static str,
    coverage: f64,
    smoking: Smoking,
    z_height: f64,
    z_weight: f64,
    bmi_slope: f64,
    sbp: f64,
    dbp: f64,
    hr: f64,
    rr: f64,
    glucose: f64,
    bun: f64,
    creat: f64,
    calcium: f64,
    sodium: f64,
    potassium: f64,
    chloride: f64,
    co2: f64,
    protein: f64,
    albumin: f64,
    bili: f64,
    alp: f64,
    alt: f64,
    ast: f64,
    wbc: f64,
    hgb: f64,
    mch: f64,
    mchc: f64,
    rdw: f64,
    plt: f64,
    chol: f64,
    hdl: f64,
    tg: f64,
    a1c: f64,
}

/// Age at the window's end: (from, to, weight), roughly the US age pyramid.
const AGE_BINS: [(f64, f64, f64); 9] = [
    (0.0, 10.0, 0.12),
    (10.0, 20.0, 0.12),
    (20.0, 30.0, 0.13),
    (30.0, 40.0, 0.13),
    (40.0, 50.0, 0.12),
    (50.0, 60.0, 0.13),
    (60.0, 70.0, 0.12),
    (70.0, 80.0, 0.09),
    (80.0, 95.0, 0.04),
];

const PAYERS: [(&str, f64, f64); 6] = [
    ("Blue Cross Blue Shield", 0.25, 0.8),
    ("Aetna", 0.15, 0.75),
    ("UnitedHealthcare", 0.2, 0.75),
    ("Cigna Health", 0.1, 0.75),
    ("Medicaid", 0.2, 0.95),
    ("NO_INSURANCE", 0.1, 0.0),
];

impl Person {
    fn draw(rng: &mut Rng, win: &Window) -> Person {
        let female = rng.chance(0.51);
        let bin = AGE_BINS[rng.weighted(&AGE_BINS.map(|b| b.2))];
        let age = rng.uniform(bin.0, bin.1);
        let birth = win.end - (age * YEAR as f64) as i64;
        let age0 = age - 10.0;
        let p_death = match age0 {
            a if a < 40.0 => 0.01,
            a if a < 60.0 => 0.05,
            a if a < 70.0 => 0.12,
            a if a < 80.0 => 0.3,
            _ => 0.6,
        };
        let dies = age0 > 0.0 && rng.chance(p_death);
        let death = dies.then(|| rng.int(win.start + 200 * DAY, win.end - DAY));
        let given = if female {
            rng.pick(&FEMALE_NAMES)
        } else {
            rng.pick(&MALE_NAMES)
        };
        let family = rng.pick(&FAMILY_NAMES);
        let city = rng.below(CITIES.len() as u64) as usize;
        let (n, s) = (rng.u64(), rng.u64());
        let line = catalog::street_line(n, s);
        let zip = format!("{}{:02}", CITIES[city].zip3, rng.below(100));
        let phone = format!("555-{:03}-{:04}", rng.int(200, 999), rng.below(10_000));
        let ssn = format!("999-{:02}-{:04}", rng.int(10, 99), rng.below(10_000));
        let marital = if age < 18.0 {
            0
        } else if age < 50.0 {
            rng.weighted(&[0.4, 0.48, 0.12, 0.0])
        } else {
            rng.weighted(&[0.12, 0.55, 0.18, 0.15])
        };
        let spanish = rng.chance(0.12);
        let clinic = catalog::clinic_of(city);
        let hospital = catalog::hospital_of(city);
        let pcp = catalog::practitioners_of(clinic).start + rng.below(3) as usize;
        let (payer, coverage) = if age >= 65.0 {
            ("Medicare", 0.8)
        } else {
            let p = PAYERS[rng.weighted(&PAYERS.map(|p| p.1))];
            (p.0, p.2)
        };
        let smoking = if age < 15.0 {
            Smoking::Never
        } else {
            [Smoking::Never, Smoking::Former, Smoking::Current][rng.weighted(&[0.62, 0.22, 0.16])]
        };
        let z_height = rng.normal_in(0.0, 1.0, -3.0, 3.0);
        let z_weight = rng.normal_in(0.0, 1.0, -2.5, 3.0);
        let bmi_slope = rng.normal_in(0.16, 0.08, -0.05, 0.4);
        let male = if female { 0.0 } else { 1.0 };
        Person {
            female,
            birth,
            death,
            given,
            family,
            tz: CITIES[city].tz_min,
            city,
            line,
            zip,
            phone,
            ssn,
            marital,
            spanish,
            clinic,
            hospital,
            pcp,
            payer,
            coverage,
            smoking,
            z_height,
            z_weight,
            bmi_slope,
            sbp: rng.normal(112.0 + 4.0 * male, 8.0),
            dbp: rng.normal(72.0 + 2.0 * male, 6.0),
            hr: rng.normal_in(72.0, 8.0, 52.0, 95.0),
            rr: rng.normal_in(15.0, 1.5, 12.0, 19.0),
            glucose: rng.normal_in(88.0, 7.0, 70.0, 105.0),
            bun: rng.normal_in(14.0, 3.0, 7.0, 22.0),
            creat: rng.normal_in(0.78 + 0.2 * male, 0.11, 0.5, 1.25),
            calcium: rng.normal_in(9.5, 0.3, 8.6, 10.3),
            sodium: rng.normal_in(140.0, 1.5, 136.0, 144.0),
            potassium: rng.normal_in(4.2, 0.25, 3.6, 5.0),
            chloride: rng.normal_in(103.0, 1.8, 98.0, 107.0),
            co2: rng.normal_in(25.0, 1.5, 21.0, 29.0),
            protein: rng.normal_in(7.0, 0.3, 6.2, 8.0),
            albumin: rng.normal_in(4.3, 0.22, 3.6, 5.0),
            bili: rng.normal_in(0.6, 0.2, 0.2, 1.2),
            alp: rng.normal_in(72.0, 15.0, 40.0, 120.0),
            alt: rng.normal_in(24.0, 7.0, 8.0, 50.0),
            ast: rng.normal_in(23.0, 5.0, 10.0, 40.0),
            wbc: rng.normal_in(6.8, 1.3, 4.0, 10.5),
            hgb: rng.normal_in(13.5 + 1.5 * male, 0.75, 11.8, 17.2),
            mch: rng.normal_in(30.0, 1.2, 27.0, 33.0),
            mchc: rng.normal_in(33.8, 0.5, 32.5, 35.5),
            rdw: rng.normal_in(13.0, 0.5, 11.8, 14.5),
            plt: rng.normal_in(255.0, 45.0, 160.0, 400.0),
            chol: rng.normal_in(170.0, 22.0, 120.0, 240.0),
            hdl: rng.normal_in(58.0 - 11.0 * male, 10.0, 28.0, 95.0),
            tg: 110.0 * rng::exp(rng.normal_in(0.0, 0.35, -1.0, 1.2)),
            a1c: rng.normal_in(5.3, 0.2, 4.7, 5.7),
        }
    }
}

/// A timestamp pair for observations: `effectiveDateTime` and `issued`.
struct Stamp {
    eff: String,
    issued: String,
}

/// An encounter being written.
struct Enc {
    id: Id,
    class: Code,
    kind: Code,
    start: i64,
    end: i64,
    start_s: String,
    end_s: String,
    org: usize,
    pract: usize,
    vit: Stamp,
    lab: Stamp,
    billed: Vec<Code>,
    diagnoses: Vec<Id>,
    findings: Vec<&'static str>,
    prescribed: Vec<&'static str>,
}

/// Where an encounter takes place; it sets the class, organization and practitioner.
#[derive(Clone, Copy)]
enum Setting {
    /// An ambulatory visit at the patient's clinic.
    Clinic,
    /// The emergency room of the patient's hospital.
    Emergency,
    /// A stay in the patient's hospital.
    Inpatient,
}

/// Timeline events, in processing order within a day.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Ev {
    Wellness,
    FollowUp,
    Prenatal(u8),
    Miscarriage,
    Delivery,
    Postnatal,
    Acute,
    Covid,
    Injury,
    Admission,
}

/// Well-child visits: days after birth.
const INFANT_VISITS: [i64; 12] = [5, 30, 61, 122, 183, 274, 365, 456, 548, 730, 913, 1095];

/// Childhood immunizations: vaccine and the age (days) the dose is due.
const CHILD_VACCINES: [(Code, i64); 32] = [
    (VAX_HEP_B, 0),
    (VAX_HEP_B, 30),
    (VAX_ROTAVIRUS, 61),
    (VAX_DTAP, 61),
    (VAX_IPV, 61),
    (VAX_HIB, 61),
    (VAX_PCV13, 61),
    (VAX_ROTAVIRUS, 122),
    (VAX_DTAP, 122),
    (VAX_IPV, 122),
    (VAX_HIB, 122),
    (VAX_PCV13, 122),
    (VAX_HEP_B, 183),
    (VAX_DTAP, 183),
    (VAX_IPV, 183),
    (VAX_PCV13, 183),
    (VAX_MMR, 365),
    (VAX_VARICELLA, 365),
    (VAX_HEP_A, 365),
    (VAX_HIB, 365),
    (VAX_PCV13, 365),
    (VAX_DTAP, 456),
    (VAX_HEP_A, 548),
    (VAX_DTAP, 1461),
    (VAX_IPV, 1461),
    (VAX_MMR, 1461),
    (VAX_VARICELLA, 1461),
    (VAX_TDAP, 4018),
    (VAX_HPV, 4018),
    (VAX_MCV4, 4018),
    (VAX_HPV, 4200),
    (VAX_MCV4, 5844),
];

/// Acute (ambulatory) illnesses: code, weight for children, weight for adults, female only,
/// symptom findings, medications, chance of a prescription, procedure.
struct Acute {
    code: Code,
    child: f64,
    adult: f64,
    female_only: bool,
    symptoms: &'static [Code],
    meds: &'static [Code],
    med_chance: f64,
    procedure: Option<Code>,
}

const ACUTE: [Acute; 6] = [
    Acute {
        code: VIRAL_SINUSITIS,
        child: 4.0,
        adult: 10.0,
        female_only: false,
        symptoms: &[HEADACHE],
        meds: &[MED_AMOX_CLAV],
        med_chance: 0.3,
        procedure: None,
    },
    Acute {
        code: PHARYNGITIS,
        child: 6.0,
        adult: 6.0,
        female_only: false,
        symptoms: &[SORE_THROAT, FEVER],
        meds: &[MED_ACETAMINOPHEN_325, MED_IBUPROFEN_200],
        med_chance: 0.5,
        procedure: Some(PROC_THROAT_CULTURE),
    },
    Acute {
        code: BRONCHITIS,
        child: 3.0,
        adult: 5.0,
        female_only: false,
        symptoms: &[COUGH, FEVER],
        meds: &[MED_ACETAMINOPHEN_325, MED_COUGH_SYRUP],
        med_chance: 0.6,
        procedure: Some(PROC_RESPIRATORY_FUNCTION),
    },
    Acute {
        code: OTITIS_MEDIA,
        child: 8.0,
        adult: 1.0,
        female_only: false,
        symptoms: &[FEVER],
        meds: &[MED_AMOXICILLIN, MED_IBUPROFEN_100],
        med_chance: 0.8,
        procedure: None,
    },
    Acute {
        code: STREP_THROAT,
        child: 4.0,
        adult: 2.0,
        female_only: false,
        symptoms: &[SORE_THROAT, FEVER],
        meds: &[MED_PENICILLIN],
        med_chance: 1.0,
        procedure: Some(PROC_THROAT_CULTURE),
    },
    Acute {
        code: CYSTITIS,
        child: 0.0,
        adult: 3.0,
        female_only: true,
        symptoms: &[],
        meds: &[MED_NITROFURANTOIN, MED_PHENAZOPYRIDINE],
        med_chance: 1.0,
        procedure: Some(PROC_URINE_CULTURE),
    },
];

/// Injuries seen in the emergency room: code, weight, procedures.
const INJURIES: [(Code, f64, &[Code]); 6] = [
    (ANKLE_SPRAIN, 4.0, &[]),
    (FOREARM_FRACTURE, 2.0, &[PROC_IMMOBILIZATION]),
    (FOREARM_LACERATION, 3.0, &[PROC_SUTURE]),
    (CONCUSSION, 1.5, &[]),
    (ANKLE_FRACTURE, 1.5, &[PROC_ANKLE_XRAY, PROC_IMMOBILIZATION]),
    (WHIPLASH, 1.5, &[]),
];

/// The care plan (category and activities) started when a chronic condition is diagnosed.
fn chronic_plan(kind: Kind) -> Option<(Code, &'static [Code])> {
    Some(match kind {
        Kind::Hypertension => (PLAN_HYPERTENSION, &[ACT_DASH_DIET, ACT_EXERCISE_EDUCATION]),
        Kind::Diabetes | Kind::Prediabetes => {
            (PLAN_DIABETES, &[ACT_DIABETIC_DIET, ACT_EXERCISE_THERAPY])
        }
        Kind::Hyperlipidemia => (
            PLAN_HYPERLIPIDEMIA,
            &[ACT_LOW_CALORIE_DIET, ACT_EXERCISE_THERAPY],
        ),
        Kind::Copd => (PLAN_COPD, &[ACT_PULMONARY_REHAB, ACT_SMOKING_CESSATION]),
        Kind::Asthma => (PLAN_ASTHMA, &[ACT_ALLERGY_EDUCATION]),
        Kind::BackPain | Kind::NeckPain | Kind::OaKnee => {
            (PLAN_MUSCULOSKELETAL, &[ACT_STRETCHING, ACT_HEAT_THERAPY])
        }
        _ => return None,
    })
}

/// The care plan after an injury.
fn injury_plan(code: &Code) -> (Code, &'static [Code]) {
    match code.code {
        c if c == FOREARM_LACERATION.code => (PLAN_WOUND, &[ACT_DRESSING_CHANGE]),
        c if c == CONCUSSION.code => (PLAN_HEAD_INJURY, &[ACT_REST]),
        c if c == FOREARM_FRACTURE.code || c == ANKLE_FRACTURE.code => (PLAN_FRACTURE, &[ACT_RICE]),
        c if c == WHIPLASH.code => (PLAN_MUSCULOSKELETAL, &[ACT_STRETCHING, ACT_HEAT_THERAPY]),
        _ => (PLAN_PHYSICAL_THERAPY, &[ACT_RICE]),
    }
}

/// Piecewise-linear interpolation in a table of (x, y) sorted by x.
fn interp(table: &[(f64, f64)], x: f64) -> f64 {
    if x <= table[0].0 {
        return table[0].1;
    }
    for w in table.windows(2) {
        if x <= w[1].0 {
            let f = (x - w[0].0) / (w[1].0 - w[0].0);
            return w[0].1 + f * (w[1].1 - w[0].1);
        }
    }
    table[table.len() - 1].1
}

/// A resting rate by age: `child` under 1, 3, 6 and 12 years, else the patient's `adult` baseline.
fn by_child_age(age: f64, child: [f64; 4], adult: f64) -> f64 {
    match age {
        a if a < 1.0 => child[0],
        a if a < 3.0 => child[1],
        a if a < 6.0 => child[2],
        a if a < 12.0 => child[3],
        _ => adult,
    }
}

/// Median height (cm) by age, boys and girls (CDC/WHO growth charts, rounded).
const HEIGHT_M: [(f64, f64); 23] = [
    (0.0, 49.9),
    (0.25, 61.4),
    (0.5, 67.6),
    (1.0, 75.7),
    (1.5, 82.3),
    (2.0, 87.1),
    (3.0, 96.1),
    (4.0, 103.3),
    (5.0, 110.0),
    (6.0, 116.0),
    (7.0, 121.7),
    (8.0, 127.3),
    (9.0, 132.6),
    (10.0, 137.8),
    (11.0, 143.1),
    (12.0, 149.1),
    (13.0, 156.0),
    (14.0, 163.2),
    (15.0, 169.0),
    (16.0, 173.0),
    (17.0, 175.2),
    (18.0, 176.1),
    (20.0, 176.5),
];
const HEIGHT_F: [(f64, f64); 23] = [
    (0.0, 49.1),
    (0.25, 59.8),
    (0.5, 65.7),
    (1.0, 74.0),
    (1.5, 80.7),
    (2.0, 85.7),
    (3.0, 95.1),
    (4.0, 102.7),
    (5.0, 109.4),
    (6.0, 115.5),
    (7.0, 121.1),
    (8.0, 126.6),
    (9.0, 132.5),
    (10.0, 138.6),
    (11.0, 144.8),
    (12.0, 151.2),
    (13.0, 156.4),
    (14.0, 159.8),
    (15.0, 161.7),
    (16.0, 162.5),
    (17.0, 162.9),
    (18.0, 163.1),
    (20.0, 163.3),
];
/// Median weight (kg) by age, boys and girls.
const WEIGHT_M: [(f64, f64); 22] = [
    (0.0, 3.3),
    (0.25, 6.4),
    (0.5, 7.9),
    (1.0, 9.6),
    (1.5, 10.9),
    (2.0, 12.2),
    (3.0, 14.3),
    (4.0, 16.3),
    (5.0, 18.4),
    (6.0, 20.7),
    (7.0, 23.0),
    (8.0, 25.6),
    (9.0, 28.6),
    (10.0, 31.9),
    (11.0, 35.6),
    (12.0, 40.0),
    (13.0, 45.3),
    (14.0, 51.0),
    (15.0, 56.3),
    (16.0, 60.8),
    (17.0, 64.4),
    (18.0, 67.0),
];
const WEIGHT_F: [(f64, f64); 22] = [
    (0.0, 3.2),
    (0.25, 5.8),
    (0.5, 7.3),
    (1.0, 8.9),
    (1.5, 10.2),
    (2.0, 11.5),
    (3.0, 13.9),
    (4.0, 16.1),
    (5.0, 18.2),
    (6.0, 20.2),
    (7.0, 22.4),
    (8.0, 25.0),
    (9.0, 28.2),
    (10.0, 31.9),
    (11.0, 36.0),
    (12.0, 40.5),
    (13.0, 44.9),
    (14.0, 48.6),
    (15.0, 51.3),
    (16.0, 53.1),
    (17.0, 54.3),
    (18.0, 55.4),
];
/// Median head circumference (cm) by age, boys.
const HEAD: [(f64, f64); 7] = [
    (0.0, 34.5),
    (0.25, 40.5),
    (0.5, 43.3),
    (1.0, 46.1),
    (1.5, 47.4),
    (2.0, 48.3),
    (3.0, 49.5),
];

struct Gen {
    rng: Rng,
    win: Window,
    seed: u64,
    index: u64,
    sink: Sink,
    p: Person,
    pid: Id,
    chronic: Vec<Chronic>,
    obesity: bool,
    colonoscopy: bool,
    vaccines: [bool; CHILD_VACCINES.len()],
    last_day: i64,
    last_routine_day: i64,
    pregnancy: Option<Id>,
    pregnancy_end: i64,
}

impl Gen {
    fn new(seed: u64, index: u64, win: Window, style: Style) -> Gen {
        let mut rng = Rng::new(seed, index);
        let pid = rng.uuid();
        let p = Person::draw(&mut rng, &win);
        let mut g = Gen {
            rng,
            win,
            seed,
            index,
            sink: Sink {
                style,
                out: Vec::with_capacity(1024),
            },
            p,
            pid,
            chronic: Vec::new(),
            obesity: false,
            colonoscopy: false,
            vaccines: [false; CHILD_VACCINES.len()],
            last_day: 0,
            last_routine_day: 0,
            pregnancy: None,
            pregnancy_end: 0,
        };
        g.draw_chronic();
        g
    }

    fn age(&self, t: i64) -> f64 {
        (t - self.p.birth) as f64 / YEAR as f64
    }

    fn alive_end(&self) -> i64 {
        self.p.death.unwrap_or(self.win.end)
    }

    fn maybe_chronic(&mut self, kind: Kind, code: Code, p: f64, min_age: f64) {
        if p <= 0.0 || !self.rng.chance(p) {
            return;
        }
        let earliest =
            (self.p.birth + (min_age * YEAR as f64) as i64).max(self.win.start - 15 * YEAR);
        let latest = self.alive_end() - DAY;
        if earliest >= latest {
            return;
        }
        let onset = self.rng.int(earliest, latest);
        let code = if kind == Kind::Asthma && self.age(onset) < 18.0 {
            CHILDHOOD_ASTHMA
        } else {
            code
        };
        self.chronic.push(Chronic {
            kind,
            code,
            onset,
            cond: None,
            meds: Vec::new(),
        });
    }

    /// Draws which chronic conditions the patient has by the end of the window, and their onsets.
    fn draw_chronic(&mut self) {
        let a = self.age(self.alive_end());
        let female = self.p.female;
        let step = |a: f64, t: &[(f64, f64)]| {
            t.iter()
                .rev()
                .find(|(from, _)| a >= *from)
                .map_or(0.0, |x| x.1)
        };
        self.maybe_chronic(
            Kind::Hypertension,
            HYPERTENSION,
            step(a, &[(18.0, 0.08), (40.0, 0.3), (60.0, 0.55)]),
            18.0,
        );
        self.maybe_chronic(
            Kind::Diabetes,
            DIABETES,
            step(a, &[(0.0, 0.01), (30.0, 0.06), (50.0, 0.14), (65.0, 0.2)]),
            25.0,
        );
        if !self.chronic.iter().any(|c| c.kind == Kind::Diabetes) {
            self.maybe_chronic(
                Kind::Prediabetes,
                PREDIABETES,
                step(a, &[(18.0, 0.1), (40.0, 0.25)]),
                18.0,
            );
        }
        self.maybe_chronic(
            Kind::Hyperlipidemia,
            HYPERLIPIDEMIA,
            step(a, &[(0.0, 0.02), (30.0, 0.12), (50.0, 0.3)]),
            25.0,
        );
        self.maybe_chronic(Kind::Anemia, ANEMIA, if female { 0.09 } else { 0.04 }, 1.0);
        self.maybe_chronic(Kind::Asthma, ASTHMA, 0.08, 2.0);
        let copd = if self.p.smoking != Smoking::Never && a >= 45.0 {
            0.15
        } else if a >= 55.0 {
            0.02
        } else {
            0.0
        };
        self.maybe_chronic(Kind::Copd, COPD, copd, 40.0);
        let chd = if a < 50.0 {
            0.0
        } else {
            (if female { 0.06 } else { 0.1 }) * if a >= 70.0 { 1.6 } else { 1.0 }
        };
        self.maybe_chronic(Kind::Chd, CHD, chd, 45.0);
        self.maybe_chronic(
            Kind::Afib,
            AFIB,
            step(a, &[(60.0, 0.06), (75.0, 0.12)]),
            55.0,
        );
        let ckd_code = if self.rng.chance(0.6) { CKD2 } else { CKD1 };
        let ht_or_dm = self
            .chronic
            .iter()
            .any(|c| matches!(c.kind, Kind::Hypertension | Kind::Diabetes));
        let ckd = if ht_or_dm {
            0.25
        } else if a >= 70.0 {
            0.05
        } else {
            0.0
        };
        self.maybe_chronic(Kind::Ckd, ckd_code, ckd, 35.0);
        self.maybe_chronic(
            Kind::BackPain,
            LOW_BACK_PAIN,
            step(a, &[(20.0, 0.12)]),
            20.0,
        );
        self.maybe_chronic(Kind::NeckPain, NECK_PAIN, step(a, &[(20.0, 0.05)]), 20.0);
        self.maybe_chronic(Kind::OaKnee, OA_KNEE, step(a, &[(50.0, 0.12)]), 45.0);
        self.maybe_chronic(Kind::ChronicSinusitis, CHRONIC_SINUSITIS, 0.04, 10.0);
        let osteo = if female && a >= 60.0 { 0.15 } else { 0.0 };
        self.maybe_chronic(Kind::Osteoporosis, OSTEOPOROSIS, osteo, 55.0);
    }

    fn has(&self, kind: Kind, t: i64) -> bool {
        self.chronic.iter().any(|c| c.kind == kind && c.onset <= t)
    }

    fn treated(&self, kind: Kind) -> bool {
        self.chronic
            .iter()
            .any(|c| c.kind == kind && c.cond.is_some())
    }

    fn chronic_of(&self, kind: Kind) -> Option<&Chronic> {
        self.chronic.iter().find(|c| c.kind == kind)
    }

    // ------------------------------------------------------------------ timeline

    fn weekday_adjust(day: i64) -> i64 {
        match time::weekday(day) {
            6 => day + 2,
            0 => day + 1,
            _ => day,
        }
    }

    fn schedule(&mut self) -> Vec<(i64, Ev)> {
        let birth_day = self.p.birth.div_euclid(DAY);
        let first = (self.win.start / DAY + 1).max(birth_day + 2);
        let last = (self.win.end / DAY - 8).min(self.alive_end().div_euclid(DAY) - 1);
        self.last_day = last;
        let mut ev = Vec::with_capacity(64);
        if first > last {
            return ev;
        }
        // Wellness: the infant schedule, then a visit around every birthday.
        for d in INFANT_VISITS {
            let day = Self::weekday_adjust(birth_day + d);
            if !self.rng.chance(0.03) {
                ev.push((day, Ev::Wellness));
            }
        }
        let k0 = (((first - birth_day) as f64 / 365.2425) as i64).max(4);
        let k1 = ((last - birth_day) as f64 / 365.2425) as i64 + 1;
        for k in k0..=k1 {
            let day = birth_day + (k as f64 * 365.2425) as i64 + self.rng.int(-20, 20);
            let skip = if k >= 18 { 0.08 } else { 0.04 };
            if !self.rng.chance(skip) {
                ev.push((Self::weekday_adjust(day), Ev::Wellness));
            }
        }
        // Follow-ups for chronic conditions, more often with several.
        let mut onsets: Vec<i64> = self
            .chronic
            .iter()
            .filter(|c| c.kind.follow_up())
            .map(|c| c.onset.div_euclid(DAY))
            .collect();
        onsets.sort_unstable();
        if let Some(&o) = onsets.first() {
            let mut day = o.max(first) + self.rng.int(30, 120);
            while day <= last {
                let n = onsets.iter().filter(|x| **x <= day).count();
                ev.push((Self::weekday_adjust(day), Ev::FollowUp));
                day += match n {
                    1 => self.rng.int(90, 150),
                    2 => self.rng.int(60, 100),
                    _ => self.rng.int(50, 85),
                };
            }
        }
        // Acute illnesses, injuries and hospital admissions: one draw per week.
        let n_chronic = self.chronic.len() as f64;
        let mut day = first + self.rng.int(0, 6);
        while day <= last {
            let age = (day * DAY - self.p.birth) as f64 / YEAR as f64;
            let acute = match age {
                a if a < 5.0 => 2.4,
                a if a < 18.0 => 1.5,
                a if a < 65.0 => 1.2,
                _ => 1.3,
            };
            let injury = 0.08;
            let admission = match age {
                a if a >= 65.0 => 0.05 + 0.02 * n_chronic,
                a if a >= 40.0 => 0.01 + 0.01 * n_chronic,
                _ => 0.004,
            };
            let u = self.rng.f64() * 52.18;
            if u < acute {
                ev.push((Self::weekday_adjust(day), Ev::Acute));
            } else if u < acute + injury {
                ev.push((day, Ev::Injury));
            } else if u < acute + injury + admission {
                ev.push((day, Ev::Admission));
            }
            day += 7;
        }
        // One COVID-19 episode for some, between March 2020 and March 2023.
        let lo = first.max(time::days_from_civil(2020, 3, 1));
        let hi = last.min(time::days_from_civil(2023, 3, 1)) - 14;
        if lo < hi && self.rng.chance(0.3) {
            ev.push((Self::weekday_adjust(self.rng.int(lo, hi)), Ev::Covid));
        }
        // A pregnancy for some women aged 18 to 40.
        if self.p.female {
            let lo = first.max(birth_day + 18 * 365);
            let hi = last.min(birth_day + 40 * 365) - 60;
            if lo < hi && self.rng.chance(0.3) {
                let c = self.rng.int(lo, hi);
                ev.push((Self::weekday_adjust(c + 56), Ev::Prenatal(8)));
                if self.rng.chance(0.12) {
                    let m = c + self.rng.int(63, 84);
                    ev.push((m, Ev::Miscarriage));
                    self.pregnancy_end = m * DAY;
                } else {
                    for w in [12u8, 16, 20, 24, 28, 32, 36, 38] {
                        ev.push((Self::weekday_adjust(c + 7 * w as i64), Ev::Prenatal(w)));
                    }
                    let d = c + self.rng.int(266, 287);
                    ev.push((d, Ev::Delivery));
                    ev.push((Self::weekday_adjust(d + 42), Ev::Postnatal));
                    self.pregnancy_end = d * DAY;
                }
            }
        }
        ev.retain(|(d, _)| *d >= first && *d <= last);
        ev.sort_unstable();
        ev
    }

    fn run(&mut self) {
        let events = self.schedule();
        self.patient_resource();
        self.last_routine_day = events
            .iter()
            .filter(|e| matches!(e.1, Ev::Wellness | Ev::FollowUp))
            .map(|e| e.0)
            .max()
            .unwrap_or(0);
        for (day, ev) in events {
            match ev {
                Ev::Wellness => self.wellness(day),
                Ev::FollowUp => self.follow_up(day),
                Ev::Acute => self.acute(day),
                Ev::Injury => self.injury(day),
                Ev::Admission => self.admission(day, None),
                Ev::Covid => self.covid(day),
                Ev::Prenatal(w) => self.prenatal(day, w),
                Ev::Miscarriage => self.miscarriage(day),
                Ev::Delivery => self.delivery(day),
                Ev::Postnatal => self.postnatal(day),
            }
        }
    }

    fn clinic_time(&mut self, day: i64) -> i64 {
        day * DAY + self.rng.int(8 * 3600, 16 * 3600 + 1800) - self.p.tz as i64 * 60
    }

    fn any_time(&mut self, day: i64) -> i64 {
        day * DAY + self.rng.int(0, DAY - 1) - self.p.tz as i64 * 60
    }

    fn clinic_practitioner(&mut self) -> usize {
        if self.rng.chance(0.8) {
            self.p.pcp
        } else {
            catalog::practitioners_of(self.p.clinic).start + self.rng.below(3) as usize
        }
    }

    fn hospital_practitioner(&mut self) -> usize {
        catalog::practitioners_of(self.p.hospital).start + self.rng.below(2) as usize
    }

    // ------------------------------------------------------------------ resources

    fn patient_resource(&mut self) {
        let p = &self.p;
        let mrn = format!("FG-{}-{:07}", self.seed, self.index);
        let city = &CITIES[p.city];
        let adult = self.age(self.win.end) >= 18.0;
        let prefix = match (adult, p.female, p.marital) {
            (false, _, _) => None,
            (true, false, _) => Some("Mr."),
            (true, true, 1 | 3) => Some("Mrs."),
            (true, true, _) => Some("Ms."),
        };
        self.sink.emit("Patient", self.pid, 1200, |o| {
            o.arr("identifier", |a| {
                a.obj(|o| {
                    o.concept("type", &ID_MR);
                    o.str("system", MRN_SYSTEM);
                    o.str("value", &mrn);
                });
                a.obj(|o| {
                    o.concept("type", &ID_SS);
                    o.str("system", SSN);
                    o.str("value", &p.ssn);
                });
            });
            o.arr("name", |a| {
                a.obj(|o| {
                    o.str("use", "official");
                    o.str("family", p.family);
                    o.arr("given", |a| a.str(p.given));
                    if let Some(x) = prefix {
                        o.arr("prefix", |a| a.str(x));
                    }
                })
            });
            o.arr("telecom", |a| {
                a.obj(|o| {
                    o.str("system", "phone");
                    o.str("value", &p.phone);
                    o.str("use", "home");
                })
            });
            o.str("gender", if p.female { "female" } else { "male" });
            o.str("birthDate", &time::date(p.birth, p.tz));
            if let Some(d) = p.death {
                o.str("deceasedDateTime", &time::datetime(d, p.tz));
            }
            o.arr("address", |a| {
                a.obj(|o| {
                    o.str("use", "home");
                    o.arr("line", |a| a.str(&p.line));
                    o.str("city", city.name);
                    o.str("state", city.state);
                    o.str("postalCode", &p.zip);
                    o.str("country", "US");
                })
            });
            o.concept("maritalStatus", &MARITAL[p.marital]);
            o.arr("communication", |a| {
                a.obj(|o| o.concept("language", if p.spanish { &LANG_ES } else { &LANG_EN }))
            });
        });
    }

    fn stamp(&mut self, t: i64, delay_lo: i64, delay_hi: i64) -> Stamp {
        let ms = t * 1000 + self.rng.int(delay_lo * 1000, delay_hi * 1000);
        Stamp {
            eff: time::datetime(t, self.p.tz),
            issued: time::instant(ms, self.p.tz),
        }
    }

    /// Starts an encounter of `kind` at `start` in `setting`: draws its practitioner, then its
    /// length in seconds with `duration`, and writes the Encounter resource.
    fn begin(
        &mut self,
        setting: Setting,
        start: i64,
        duration: impl FnOnce(&mut Self) -> i64,
        kind: Code,
        reason: Option<&Code>,
    ) -> Enc {
        let (class, org, pract) = match setting {
            Setting::Clinic => (CLASS_AMB, self.p.clinic, self.clinic_practitioner()),
            Setting::Emergency => (CLASS_EMER, self.p.hospital, self.hospital_practitioner()),
            Setting::Inpatient => (CLASS_IMP, self.p.hospital, self.hospital_practitioner()),
        };
        let duration = duration(self);
        let id = self.rng.uuid();
        let end = start + duration;
        let start_s = time::datetime(start, self.p.tz);
        let end_s = time::datetime(end, self.p.tz);
        let vit = self.stamp(start, 0, 900);
        let lab = self.stamp(start, 3600, 4 * 3600);
        let names = catalog::names();
        self.sink.emit("Encounter", id, 900, |o| {
            o.str("status", "finished");
            o.coding("class", &class);
            o.concepts("type", &kind);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.arr("participant", |a| {
                a.obj(|o| {
                    o.concepts("type", &PPRF);
                    o.period("period", &start_s, &end_s);
                    o.reference_display(
                        "individual",
                        Ref::Shared("Practitioner", &names.practitioner_ids[pract]),
                        &names.practitioner_names[pract],
                    );
                })
            });
            o.period("period", &start_s, &end_s);
            if let Some(r) = reason {
                o.concepts("reasonCode", r);
            }
            o.reference_display(
                "serviceProvider",
                Ref::Shared("Organization", &names.org_ids[org]),
                &names.org_names[org],
            );
        });
        Enc {
            id,
            class,
            kind,
            start,
            end,
            start_s,
            end_s,
            org,
            pract,
            vit,
            lab,
            billed: Vec::new(),
            diagnoses: Vec::new(),
            findings: Vec::new(),
            prescribed: Vec::new(),
        }
    }

    fn condition(&mut self, enc: &mut Enc, code: &Code, onset: i64, abatement: Option<i64>) -> Id {
        let id = self.rng.uuid();
        let tz = self.p.tz;
        let onset_s = time::datetime(onset, tz);
        let abatement_s = abatement
            .filter(|a| *a < self.win.end)
            .map(|a| time::datetime(a, tz));
        self.sink.emit("Condition", id, 800, |o| {
            let status = if abatement_s.is_some() {
                &CLINICAL_RESOLVED
            } else {
                &CLINICAL_ACTIVE
            };
            o.codings_only("clinicalStatus", status);
            o.codings_only("verificationStatus", &VERIFIED);
            o.concepts("category", &ENCOUNTER_DIAGNOSIS);
            o.concept("code", code);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.str("onsetDateTime", &onset_s);
            if let Some(a) = &abatement_s {
                o.str("abatementDateTime", a);
            }
            o.str("recordedDate", &enc.start_s);
        });
        enc.diagnoses.push(id);
        enc.findings.push(code.display);
        id
    }

    fn obs(&mut self, enc: &Enc, cat: &Code, code: &Code, value: impl FnOnce(&mut Obj)) -> Id {
        let id = self.rng.uuid();
        let st = if cat.code == "laboratory" {
            &enc.lab
        } else {
            &enc.vit
        };
        self.sink.emit("Observation", id, 700, |o| {
            o.str("status", "final");
            o.concepts("category", cat);
            o.concept("code", code);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.str("effectiveDateTime", &st.eff);
            o.str("issued", &st.issued);
            value(o);
        });
        id
    }

    fn obs_q(&mut self, enc: &Enc, cat: &Code, m: &Measure, v: f64) -> Id {
        let v = v.max(0.0) + 0.0;
        self.obs(enc, cat, &m.code, |o| o.quantity("valueQuantity", v, m))
    }

    fn obs_cc(&mut self, enc: &Enc, cat: &Code, code: &Code, value: &Code) -> Id {
        self.obs(enc, cat, code, |o| o.concept("valueCodeableConcept", value))
    }

    fn obs_bp(&mut self, enc: &Enc, sys: f64, dia: f64) -> Id {
        self.obs(enc, &CAT_VITAL, &BLOOD_PRESSURE, |o| {
            o.arr("component", |a| {
                for (m, v) in [(&SYSTOLIC, sys), (&DIASTOLIC, dia)] {
                    a.obj(|o| {
                        o.concept("code", &m.code);
                        o.quantity("valueQuantity", v, m);
                    });
                }
            })
        })
    }

    fn report(&mut self, enc: &Enc, code: &Code, results: &[Id]) -> Id {
        let id = self.rng.uuid();
        let names = catalog::names();
        let capacity = 400 + 60 * results.len();
        self.sink.emit("DiagnosticReport", id, capacity, |o| {
            o.str("status", "final");
            o.concepts("category", &DR_LAB);
            o.concept("code", code);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.str("effectiveDateTime", &enc.lab.eff);
            o.str("issued", &enc.lab.issued);
            o.arr("performer", |a| {
                a.reference_display(
                    Ref::Shared("Organization", &names.org_ids[enc.org]),
                    &names.org_names[enc.org],
                )
            });
            let refs: Vec<Ref> = results
                .iter()
                .map(|r| Ref::Local("Observation", r))
                .collect();
            o.references("result", &refs);
        });
        id
    }

    fn panel(&mut self, enc: &Enc, code: &Code, values: &[(&'static Measure, f64)]) {
        let ids: Vec<Id> = values
            .iter()
            .map(|(m, v)| self.obs_q(enc, &CAT_LAB, m, *v))
            .collect();
        self.report(enc, code, &ids);
    }

    fn procedure(&mut self, enc: &mut Enc, code: &Code, minutes: i64, reason: Option<Id>) -> Id {
        let start = enc.start;
        self.procedure_at(enc, code, start, minutes, reason)
    }

    fn procedure_at(
        &mut self,
        enc: &mut Enc,
        code: &Code,
        start: i64,
        minutes: i64,
        reason: Option<Id>,
    ) -> Id {
        let id = self.rng.uuid();
        let start_s = time::datetime(start, self.p.tz);
        let end_s = time::datetime(start + minutes * 60, self.p.tz);
        self.sink.emit("Procedure", id, 600, |o| {
            o.str("status", "completed");
            o.concept("code", code);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.period("performedPeriod", &start_s, &end_s);
            if let Some(r) = &reason {
                o.references("reasonReference", &[Ref::Local("Condition", r)]);
            }
        });
        enc.billed.push(*code);
        id
    }

    fn immunization(&mut self, enc: &mut Enc, vaccine: &Code) {
        let id = self.rng.uuid();
        self.sink.emit("Immunization", id, 500, |o| {
            o.str("status", "completed");
            o.concept("vaccineCode", vaccine);
            o.reference("patient", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.str("occurrenceDateTime", &enc.start_s);
            o.bool("primarySource", true);
        });
        enc.billed.push(*vaccine);
    }

    fn med_request(
        &mut self,
        enc: &mut Enc,
        med: &Code,
        reason: Option<Id>,
        status: &str,
        prn: bool,
    ) {
        let id = self.rng.uuid();
        let names = catalog::names();
        self.sink.emit("MedicationRequest", id, 900, |o| {
            o.str("status", status);
            o.str("intent", "order");
            o.concept("medicationCodeableConcept", med);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.str("authoredOn", &enc.start_s);
            o.reference_display(
                "requester",
                Ref::Shared("Practitioner", &names.practitioner_ids[enc.pract]),
                &names.practitioner_names[enc.pract],
            );
            if let Some(r) = &reason {
                o.references("reasonReference", &[Ref::Local("Condition", r)]);
            }
            o.arr("dosageInstruction", |a| {
                a.obj(|o| {
                    o.int("sequence", 1);
                    if !prn {
                        o.obj("timing", |o| {
                            o.obj("repeat", |o| {
                                o.int("frequency", 1);
                                o.dec("period", 1.0, 1);
                                o.str("periodUnit", "d");
                            })
                        });
                    }
                    o.bool("asNeededBoolean", prn);
                    if !prn {
                        o.arr("doseAndRate", |a| {
                            a.obj(|o| {
                                o.concept("type", &DOSE_ORDERED);
                                o.obj("doseQuantity", |o| o.dec("value", 1.0, 1));
                            })
                        });
                    }
                })
            });
        });
        enc.prescribed.push(med.display);
        // The pharmacy claim for the prescription.
        let claim = self.rng.uuid();
        let cost = self.rng.uniform(8.0, 180.0);
        self.sink.emit("Claim", claim, 900, |o| {
            claim_head(o, &CLAIM_PHARMACY, &self.pid, enc);
            o.reference("prescription", Ref::Local("MedicationRequest", &id));
            claim_insurance(o, self.p.payer);
            o.arr("item", |a| {
                a.obj(|o| {
                    o.int("sequence", 1);
                    o.concept("productOrService", med);
                    o.references("encounter", &[Ref::Local("Encounter", &enc.id)]);
                })
            });
            o.money("total", cost);
        });
    }

    /// A CareTeam (patient, practitioner, organization) and the CarePlan it carries out.
    #[allow(clippy::too_many_arguments)]
    fn care_plan(
        &mut self,
        enc: &Enc,
        plan: &Code,
        activities: &[Code],
        reason: Id,
        reason_code: &Code,
        end: Option<i64>,
    ) {
        let names = catalog::names();
        let team = self.rng.uuid();
        let id = self.rng.uuid();
        let end_s = end
            .filter(|e| *e < self.win.end)
            .map(|e| time::datetime(e, self.p.tz));
        let done = end_s.is_some();
        let period = |o: &mut Obj| {
            o.obj("period", |o| {
                o.str("start", &enc.start_s);
                if let Some(e) = &end_s {
                    o.str("end", e);
                }
            })
        };
        let pract = Ref::Shared("Practitioner", &names.practitioner_ids[enc.pract]);
        let org = Ref::Shared("Organization", &names.org_ids[enc.org]);
        self.sink.emit("CareTeam", team, 1200, |o| {
            o.str("status", if done { "inactive" } else { "active" });
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            period(o);
            o.arr("participant", |a| {
                a.obj(|o| {
                    o.concepts("role", &ROLE_PATIENT);
                    o.reference("member", Ref::Local("Patient", &self.pid));
                });
                a.obj(|o| {
                    o.concepts("role", &ROLE_PROFESSIONAL);
                    o.reference_display("member", pract, &names.practitioner_names[enc.pract]);
                });
                a.obj(|o| {
                    o.concepts("role", &ROLE_SERVICES);
                    o.reference_display("member", org, &names.org_names[enc.org]);
                });
            });
            o.concepts("reasonCode", reason_code);
            o.arr("managingOrganization", |a| {
                a.reference_display(org, &names.org_names[enc.org])
            });
        });
        self.sink.emit("CarePlan", id, 1200, |o| {
            o.str("status", if done { "completed" } else { "active" });
            o.str("intent", "order");
            o.arr("category", |a| {
                a.obj(|o| {
                    o.arr("coding", |a| {
                        a.obj(|o| {
                            o.str("system", CAREPLAN_CATEGORY);
                            o.str("code", "assess-plan");
                        })
                    })
                });
                a.concept(plan);
            });
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            period(o);
            o.references("careTeam", &[Ref::Local("CareTeam", &team)]);
            o.references("addresses", &[Ref::Local("Condition", &reason)]);
            o.arr("activity", |a| {
                for act in activities {
                    a.obj(|o| {
                        o.obj("detail", |o| {
                            o.concept("code", act);
                            o.str("status", if done { "completed" } else { "in-progress" });
                            o.obj("location", |o| o.str("display", &names.org_names[enc.org]));
                        })
                    });
                }
            });
        });
    }

    /// A urine dipstick panel (negative findings; glucose in urine for uncontrolled diabetes).
    fn urinalysis(&mut self, enc: &Enc, t: i64) {
        let glucose = if self.has(Kind::Diabetes, t) && !self.treated(Kind::Diabetes) {
            self.rng.normal_in(150.0, 60.0, 50.0, 500.0)
        } else {
            0.0
        };
        let mut ids = Vec::with_capacity(11);
        ids.push(self.obs_cc(enc, &CAT_LAB, &URINE_COLOR, &COLOR_YELLOW));
        ids.push(self.obs_cc(enc, &CAT_LAB, &URINE_CLARITY, &CLARITY_TRANSLUCENT));
        ids.push(self.obs_q(enc, &CAT_LAB, &URINE_GLUCOSE, glucose));
        ids.push(self.obs_q(enc, &CAT_LAB, &URINE_BILIRUBIN, 0.0));
        ids.push(self.obs_q(enc, &CAT_LAB, &URINE_KETONES, 0.0));
        let sg = self.rng.normal_in(1.018, 0.006, 1.003, 1.035);
        ids.push(self.obs_q(enc, &CAT_LAB, &URINE_SPECIFIC_GRAVITY, sg));
        let ph = self.rng.normal_in(6.0, 0.6, 4.5, 8.0);
        ids.push(self.obs_q(enc, &CAT_LAB, &URINE_PH, ph));
        let protein = if self.has(Kind::Ckd, t) {
            self.rng.normal_in(30.0, 15.0, 10.0, 100.0)
        } else {
            0.0
        };
        ids.push(self.obs_q(enc, &CAT_LAB, &URINE_PROTEIN, protein));
        ids.push(self.obs_cc(enc, &CAT_LAB, &URINE_NITRITE, &NITRITE_NEGATIVE));
        ids.push(self.obs_cc(
            enc,
            &CAT_LAB,
            &URINE_LEUKOCYTE_ESTERASE,
            &LEUKOCYTES_NEGATIVE,
        ));
        ids.push(self.obs_cc(enc, &CAT_LAB, &URINE_HEMOGLOBIN, &BLOOD_NEGATIVE));
        self.report(enc, &PANEL_URINALYSIS, &ids);
    }

    fn med_admin(&mut self, enc: &Enc, med: &Code, t: i64, reason: Option<Id>) {
        let id = self.rng.uuid();
        let t_s = time::datetime(t, self.p.tz);
        self.sink.emit("MedicationAdministration", id, 600, |o| {
            o.str("status", "completed");
            o.concept("medicationCodeableConcept", med);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("context", Ref::Local("Encounter", &enc.id));
            o.str("effectiveDateTime", &t_s);
            if let Some(r) = &reason {
                o.references("reasonReference", &[Ref::Local("Condition", r)]);
            }
        });
    }

    /// Closes an encounter: its clinical note (DiagnosticReport and DocumentReference), Claim
    /// and ExplanationOfBenefit.
    fn finish(&mut self, enc: Enc) {
        let names = catalog::names();
        let note = base64(self.note_text(&enc).as_bytes());
        let pract = (
            &names.practitioner_ids[enc.pract],
            &names.practitioner_names[enc.pract],
        );
        let org = (&names.org_ids[enc.org], &names.org_names[enc.org]);
        let capacity = 900 + note.len();
        let dr = self.rng.uuid();
        self.sink.emit("DiagnosticReport", dr, capacity, |o| {
            o.str("status", "final");
            o.concepts("category", &NOTE_HP);
            o.concept("code", &NOTE_HP);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.reference("encounter", Ref::Local("Encounter", &enc.id));
            o.str("effectiveDateTime", &enc.start_s);
            o.str("issued", &enc.vit.issued);
            o.arr("performer", |a| {
                a.reference_display(Ref::Shared("Practitioner", pract.0), pract.1)
            });
            o.arr("presentedForm", |a| {
                a.obj(|o| {
                    o.str("contentType", "text/plain; charset=utf-8");
                    o.str("data", &note);
                })
            });
        });
        let doc = self.rng.uuid();
        self.sink.emit("DocumentReference", doc, capacity, |o| {
            o.str("status", "current");
            o.concept("type", &NOTE_HP);
            o.concepts("category", &DOC_CLINICAL_NOTE);
            o.reference("subject", Ref::Local("Patient", &self.pid));
            o.str("date", &enc.vit.issued);
            o.arr("author", |a| {
                a.reference_display(Ref::Shared("Practitioner", pract.0), pract.1)
            });
            o.reference_display("custodian", Ref::Shared("Organization", org.0), org.1);
            o.arr("content", |a| {
                a.obj(|o| {
                    o.obj("attachment", |o| {
                        o.str("contentType", "text/plain; charset=utf-8");
                        o.str("data", &note);
                    })
                })
            });
            o.obj("context", |o| {
                o.references("encounter", &[Ref::Local("Encounter", &enc.id)]);
                o.period("period", &enc.start_s, &enc.end_s);
            });
        });
        let base = match enc.class.code {
            "IMP" => 2500.0 * ((enc.end - enc.start) as f64 / DAY as f64).max(1.0),
            "EMER" => 900.0,
            _ => 130.0,
        };
        let total = base + 85.0 * enc.billed.len() as f64 + self.rng.uniform(0.0, 60.0);
        let paid = total * self.p.coverage;
        let claim_type = if enc.class.code == "AMB" {
            &CLAIM_PROFESSIONAL
        } else {
            &CLAIM_INSTITUTIONAL
        };
        let claim = self.rng.uuid();
        let capacity = 1200 + 150 * enc.billed.len();
        self.sink.emit("Claim", claim, capacity, |o| {
            claim_head(o, claim_type, &self.pid, &enc);
            if !enc.diagnoses.is_empty() {
                o.arr("diagnosis", |a| {
                    for (i, d) in enc.diagnoses.iter().enumerate() {
                        a.obj(|o| {
                            o.int("sequence", i as i64 + 1);
                            o.reference("diagnosisReference", Ref::Local("Condition", d));
                        });
                    }
                });
            }
            claim_insurance(o, self.p.payer);
            o.arr("item", |a| {
                a.obj(|o| {
                    o.int("sequence", 1);
                    o.concept("productOrService", &enc.kind);
                    o.references("encounter", &[Ref::Local("Encounter", &enc.id)]);
                });
                for (i, c) in enc.billed.iter().enumerate() {
                    a.obj(|o| {
                        o.int("sequence", i as i64 + 2);
                        o.concept("productOrService", c);
                    });
                }
            });
            o.money("total", total);
        });
        let eob = self.rng.uuid();
        self.sink.emit("ExplanationOfBenefit", eob, 1400, |o| {
            billing_head(o, claim_type, &self.pid, &enc);
            o.obj("insurer", |o| o.str("display", self.p.payer));
            o.reference_display("provider", Ref::Shared("Practitioner", pract.0), pract.1);
            o.reference("claim", Ref::Local("Claim", &claim));
            o.str("outcome", "complete");
            o.arr("insurance", |a| {
                a.obj(|o| {
                    o.bool("focal", true);
                    o.obj("coverage", |o| o.str("display", self.p.payer));
                })
            });
            o.arr("item", |a| {
                a.obj(|o| {
                    o.int("sequence", 1);
                    o.concept("productOrService", &enc.kind);
                    o.period("servicedPeriod", &enc.start_s, &enc.end_s);
                    o.references("encounter", &[Ref::Local("Encounter", &enc.id)]);
                })
            });
            o.arr("total", |a| {
                a.obj(|o| {
                    o.concept("category", &ADJ_SUBMITTED);
                    o.money("amount", total);
                })
            });
            o.obj("payment", |o| o.money("amount", paid));
        });
    }

    fn note_text(&self, enc: &Enc) -> String {
        let age = self.age(enc.start) as i64;
        let sex = if self.p.female { "female" } else { "male" };
        let mut s = String::with_capacity(400);
        s.push_str(&time::date(enc.start, self.p.tz));
        s.push_str("\n\n# Chief Complaint\n");
        if enc.findings.is_empty() {
            s.push_str("No complaints.\n");
        } else {
            for f in &enc.findings {
                s.push_str("- ");
                s.push_str(f);
                s.push('\n');
            }
        }
        s.push_str("\n# History of Present Illness\n");
        let age = if age < 2 {
            format!("{} month-old", (self.age(enc.start) * 12.0) as i64)
        } else {
            format!("{age} year-old")
        };
        s.push_str(&format!("{} is a {age} {sex}.\n", self.p.given));
        s.push_str("\n# Assessment and Plan\n");
        s.push_str(enc.kind.display);
        s.push('\n');
        for m in &enc.prescribed {
            s.push_str("- prescribed ");
            s.push_str(m);
            s.push('\n');
        }
        s
    }

    // ------------------------------------------------------------------ measurements

    fn height(&mut self, age: f64) -> f64 {
        let table: &[(f64, f64)] = if self.p.female { &HEIGHT_F } else { &HEIGHT_M };
        let h = interp(table, age) * (1.0 + 0.038 * self.p.z_height) - 0.15 * (age - 60.0).max(0.0);
        h + self.rng.normal(0.0, if age < 18.0 { 0.4 } else { 0.25 })
    }

    fn weight(&mut self, age: f64, height_cm: f64) -> f64 {
        let z = self.p.z_weight;
        let child = |female: bool, a: f64| {
            let table: &[(f64, f64)] = if female { &WEIGHT_F } else { &WEIGHT_M };
            interp(table, a) * (1.0 + 0.12 * z)
        };
        let w = if age < 18.0 {
            child(self.p.female, age) * (1.0 + 0.03 * self.p.z_height)
        } else {
            let h18 = interp(if self.p.female { &HEIGHT_F } else { &HEIGHT_M }, 18.0)
                * (1.0 + 0.038 * self.p.z_height)
                / 100.0;
            let bmi18 = child(self.p.female, 18.0) * (1.0 + 0.03 * self.p.z_height) / (h18 * h18);
            let bmi =
                bmi18 + self.p.bmi_slope * (age.min(60.0) - 18.0) - 0.08 * (age - 70.0).max(0.0);
            let h = height_cm / 100.0;
            bmi.max(15.0) * h * h
        };
        w * (1.0 + self.rng.normal(0.0, 0.012))
    }

    fn blood_pressure(&mut self, t: i64, age: f64) -> (f64, f64) {
        if age < 18.0 {
            let z = self.p.sbp - 112.0;
            return (
                88.0 + 1.6 * age + 0.6 * z + self.rng.normal(0.0, 5.0),
                52.0 + 0.9 * age + 0.4 * z + self.rng.normal(0.0, 4.0),
            );
        }
        let mut s = self.p.sbp + 0.35 * (age - 25.0).max(0.0);
        let mut d = self.p.dbp + 0.12 * (age - 25.0).max(0.0) - 0.2 * (age - 60.0).max(0.0);
        if self.has(Kind::Hypertension, t) {
            s += 26.0;
            d += 12.0;
            if let Some(c) = self
                .chronic_of(Kind::Hypertension)
                .filter(|c| c.cond.is_some())
            {
                s -= 8.0 * c.meds.len() as f64;
                d -= 4.0 * c.meds.len() as f64;
            }
        }
        (s + self.rng.normal(0.0, 7.0), d + self.rng.normal(0.0, 5.0))
    }

    fn heart_rate(&mut self, age: f64, fever: bool) -> f64 {
        let base = by_child_age(age, [130.0, 112.0, 100.0, 88.0], self.p.hr);
        base + if fever { 14.0 } else { 0.0 } + self.rng.normal(0.0, 5.0)
    }

    fn respiratory_rate(&mut self, age: f64, sick: bool) -> f64 {
        let base = by_child_age(age, [36.0, 28.0, 22.0, 19.0], self.p.rr);
        base + if sick { 4.0 } else { 0.0 } + self.rng.normal(0.0, 1.2)
    }

    /// Height, weight, BMI (or infant measures), blood pressure, heart and respiratory rate, pain.
    fn vitals_full(&mut self, enc: &Enc, age: f64) -> f64 {
        let t = enc.start;
        let h = self.height(age);
        let w = self.weight(age, h);
        let bmi = w / (h / 100.0 * h / 100.0);
        self.obs_q(enc, &CAT_VITAL, &BODY_HEIGHT, h);
        if age < 3.0 {
            let hc =
                interp(&HEAD, age) - if self.p.female { 0.8 } else { 0.0 } + 1.3 * self.p.z_height;
            let hc = hc + self.rng.normal(0.0, 0.3);
            self.obs_q(enc, &CAT_VITAL, &HEAD_CIRCUMFERENCE, hc);
        }
        self.obs_q(enc, &CAT_VITAL, &BODY_WEIGHT, w);
        if age < 2.0 {
            let pct = 100.0 * rng::phi(0.95 * self.p.z_weight + self.rng.normal(0.0, 0.15));
            self.obs_q(enc, &CAT_VITAL, &WEIGHT_FOR_LENGTH, pct);
        } else {
            self.obs_q(enc, &CAT_VITAL, &BMI, bmi);
            if age < 20.0 {
                let pct = 100.0 * rng::phi(0.95 * self.p.z_weight + self.rng.normal(0.0, 0.15));
                self.obs_q(enc, &CAT_VITAL, &BMI_PERCENTILE, pct);
            }
        }
        if age >= 3.0 {
            let (s, d) = self.blood_pressure(t, age);
            self.obs_bp(enc, s, d);
        }
        let hr = self.heart_rate(age, false);
        self.obs_q(enc, &CAT_VITAL, &HEART_RATE, hr);
        let rr = self.respiratory_rate(age, false);
        self.obs_q(enc, &CAT_VITAL, &RESPIRATORY_RATE, rr);
        if age >= 3.0 {
            let pain = self.pain_score(t, false);
            self.obs_q(enc, &CAT_VITAL, &PAIN_SEVERITY, pain);
        }
        bmi
    }

    fn pain_score(&mut self, t: i64, injured: bool) -> f64 {
        if injured {
            return self.rng.int(4, 9) as f64;
        }
        let chronic =
            self.has(Kind::BackPain, t) || self.has(Kind::NeckPain, t) || self.has(Kind::OaKnee, t);
        if chronic {
            self.rng.int(2, 7) as f64
        } else {
            [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0][self.rng.below(7) as usize]
        }
    }

    /// Temperature, heart rate, respiratory rate, blood pressure, optionally oxygen saturation.
    fn vitals_sick(&mut self, enc: &Enc, age: f64, fever: bool, oxygen: Option<f64>, bp: bool) {
        let temp = if fever {
            self.rng.normal_in(38.6, 0.4, 38.0, 40.5)
        } else {
            self.rng.normal_in(36.8, 0.25, 36.1, 37.5)
        };
        self.obs_q(enc, &CAT_VITAL, &BODY_TEMPERATURE, temp);
        let hr = self.heart_rate(age, fever);
        self.obs_q(enc, &CAT_VITAL, &HEART_RATE, hr);
        let rr = self.respiratory_rate(age, fever);
        self.obs_q(enc, &CAT_VITAL, &RESPIRATORY_RATE, rr);
        if bp && age >= 3.0 {
            let (s, d) = self.blood_pressure(enc.start, age);
            self.obs_bp(enc, s, d);
        }
        if let Some(mean) = oxygen {
            let o2 = self.rng.normal_in(mean, 1.5, 70.0, 100.0);
            self.obs_q(enc, &CAT_VITAL, &OXYGEN_SATURATION, o2);
        }
    }

    // ------------------------------------------------------------------ laboratory values

    fn glucose(&mut self, t: i64) -> f64 {
        let mut g = self.p.glucose + self.rng.normal(0.0, 7.0);
        if self.has(Kind::Diabetes, t) {
            g += if self.treated(Kind::Diabetes) {
                35.0
            } else {
                65.0
            } + self.rng.normal(0.0, 12.0);
        } else if self.has(Kind::Prediabetes, t) {
            g += 16.0;
        }
        g.max(55.0)
    }

    fn creatinine(&mut self, t: i64, age: f64) -> f64 {
        let mut c = if age < 18.0 {
            0.25 + 0.032 * age
        } else {
            self.p.creat + 0.004 * (age - 50.0).max(0.0)
        };
        if self.has(Kind::Ckd, t) {
            c *= if self.chronic_of(Kind::Ckd).is_some_and(|k| k.code == CKD2) {
                1.45
            } else {
                1.1
            };
        }
        (c * (1.0 + self.rng.normal(0.0, 0.05))).max(0.2)
    }

    /// eGFR by the MDRD study equation (the method LOINC 33914-3 names).
    fn egfr(&self, creat: f64, age: f64) -> f64 {
        let sex = if self.p.female { 0.742 } else { 1.0 };
        (175.0 * rng::pow(creat, -1.154) * rng::pow(age.max(18.0), -0.203) * sex).clamp(5.0, 160.0)
    }

    fn metabolic(&mut self, t: i64, age: f64, serum: bool) -> Vec<(&'static Measure, f64)> {
        let ckd = self.has(Kind::Ckd, t);
        let glucose = self.glucose(t);
        let bun = self.p.bun + self.rng.normal(0.0, 2.0) + if ckd { 7.0 } else { 0.0 };
        let creat = self.creatinine(t, age);
        let ca = self.p.calcium + self.rng.normal(0.0, 0.15);
        let na = self.p.sodium + self.rng.normal(0.0, 1.2);
        let k = self.p.potassium + self.rng.normal(0.0, 0.15) + if ckd { 0.3 } else { 0.0 };
        let cl = self.p.chloride + self.rng.normal(0.0, 1.2);
        let co2 = self.p.co2 + self.rng.normal(0.0, 1.2);
        let codes: [&'static Measure; 8] = if serum {
            [
                &GLUCOSE_S,
                &UREA_NITROGEN_S,
                &CREATININE_S,
                &CALCIUM_S,
                &SODIUM_S,
                &POTASSIUM_S,
                &CHLORIDE_S,
                &CARBON_DIOXIDE_S,
            ]
        } else {
            [
                &GLUCOSE,
                &UREA_NITROGEN,
                &CREATININE,
                &CALCIUM,
                &SODIUM,
                &POTASSIUM,
                &CHLORIDE,
                &CARBON_DIOXIDE,
            ]
        };
        let mut v: Vec<(&'static Measure, f64)> = codes
            .into_iter()
            .zip([glucose, bun, creat, ca, na, k, cl, co2])
            .collect();
        if serum {
            let egfr = self.egfr(creat, age);
            let protein = self.p.protein + self.rng.normal(0.0, 0.15);
            let albumin = self.p.albumin + self.rng.normal(0.0, 0.1);
            let bili = self.p.bili + self.rng.normal(0.0, 0.08);
            let alp = self.p.alp + self.rng.normal(0.0, 6.0) + if age < 18.0 { 120.0 } else { 0.0 };
            let alt = self.p.alt + self.rng.normal(0.0, 4.0);
            let ast = self.p.ast + self.rng.normal(0.0, 3.0);
            v.extend([
                (&EGFR, egfr),
                (&PROTEIN, protein),
                (&ALBUMIN, albumin),
                (&GLOBULIN, protein - albumin),
                (&BILIRUBIN, bili.max(0.1)),
                (&ALP, alp),
                (&ALT, alt.max(5.0)),
                (&AST, ast.max(8.0)),
            ]);
        }
        v
    }

    fn cbc(&mut self, t: i64, age: f64) -> Vec<(&'static Measure, f64)> {
        let anemia = self.has(Kind::Anemia, t);
        let base_hgb = if age < 12.0 {
            12.2 + 0.4 * (self.p.hgb - 14.0)
        } else {
            self.p.hgb
        };
        let hgb = base_hgb - if anemia { 2.4 } else { 0.0 } + self.rng.normal(0.0, 0.35);
        let mch = self.p.mch - if anemia { 3.5 } else { 0.0 } + self.rng.normal(0.0, 0.3);
        let mchc = self.p.mchc - if anemia { 0.8 } else { 0.0 } + self.rng.normal(0.0, 0.3);
        let rbc = hgb * 10.0 / mch;
        let hct = hgb * 100.0 / mchc;
        let mcv = hct * 10.0 / rbc;
        let rdw = self.p.rdw + if anemia { 1.8 } else { 0.0 } + self.rng.normal(0.0, 0.3);
        let wbc = (self.p.wbc + self.rng.normal(0.0, 0.8)).max(2.5);
        let plt = self.p.plt + self.rng.normal(0.0, 18.0);
        vec![
            (&WBC, wbc),
            (&RBC, rbc),
            (&HEMOGLOBIN, hgb),
            (&HEMATOCRIT, hct),
            (&MCV, mcv),
            (&MCH, mch),
            (&MCHC, mchc),
            (&RDW, rdw),
            (&PLATELETS, plt),
        ]
    }

    /// Automated differential: percentages summing to 100 and the matching absolute counts.
    fn differential(&mut self, wbc: f64) -> Vec<(&'static Measure, f64)> {
        let raw = [
            self.rng.normal_in(60.0, 7.0, 40.0, 80.0),
            self.rng.normal_in(30.0, 6.0, 15.0, 45.0),
            self.rng.normal_in(6.5, 1.5, 2.0, 11.0),
            self.rng.normal_in(2.5, 1.0, 0.5, 6.0),
            self.rng.normal_in(0.6, 0.25, 0.1, 1.5),
        ];
        let sum: f64 = raw.iter().sum();
        let pct = raw.map(|x| 100.0 * x / sum);
        let mut v: Vec<(&'static Measure, f64)> = [
            &NEUTROPHILS_PCT,
            &LYMPHOCYTES_PCT,
            &MONOCYTES_PCT,
            &EOSINOPHILS_PCT,
            &BASOPHILS_PCT,
        ]
        .into_iter()
        .zip(pct)
        .collect();
        for (m, p) in [
            &NEUTROPHILS,
            &LYMPHOCYTES,
            &MONOCYTES,
            &EOSINOPHILS,
            &BASOPHILS,
        ]
        .into_iter()
        .zip(pct)
        {
            v.push((m, wbc * p / 100.0));
        }
        v
    }

    fn lipids(&mut self, t: i64, age: f64) -> Vec<(&'static Measure, f64)> {
        let mut tc = self.p.chol + 0.6 * (age - 20.0).clamp(0.0, 40.0) + self.rng.normal(0.0, 8.0);
        let mut tg = self.p.tg * (1.0 + self.rng.normal(0.0, 0.12));
        if self.has(Kind::Hyperlipidemia, t) {
            tc += if self.treated(Kind::Hyperlipidemia) {
                10.0
            } else {
                48.0
            };
            tg *= 1.2;
        }
        if self.has(Kind::Diabetes, t) {
            tg *= 1.3;
        }
        let hdl = self.p.hdl + self.rng.normal(0.0, 3.0);
        let ldl = (tc - hdl - tg / 5.0).max(30.0);
        vec![
            (&CHOLESTEROL, tc),
            (&TRIGLYCERIDES, tg),
            (&LDL, ldl),
            (&HDL, hdl),
        ]
    }

    fn a1c(&mut self, t: i64) -> f64 {
        if self.has(Kind::Diabetes, t) {
            if self.treated(Kind::Diabetes) {
                self.rng.normal_in(7.0, 0.5, 6.0, 9.5)
            } else {
                self.rng.normal_in(7.9, 0.6, 6.5, 11.0)
            }
        } else if self.has(Kind::Prediabetes, t) {
            self.rng.normal_in(6.0, 0.15, 5.7, 6.4)
        } else {
            self.p.a1c + self.rng.normal(0.0, 0.1)
        }
    }

    fn microalbumin(&mut self, t: i64) -> f64 {
        if self.has(Kind::Ckd, t) {
            self.rng.normal_in(80.0, 40.0, 30.0, 300.0)
        } else {
            self.rng.normal_in(12.0, 6.0, 2.0, 29.0)
        }
    }

    fn coagulation(&mut self, t: i64) -> Vec<(&'static Measure, f64)> {
        let warfarin = self.has(Kind::Afib, t) && self.treated(Kind::Afib);
        let inr = if warfarin {
            self.rng.normal_in(2.5, 0.4, 1.6, 3.8)
        } else {
            self.rng.normal_in(1.0, 0.08, 0.8, 1.3)
        };
        vec![(&PT, 11.5 * inr + self.rng.normal(0.0, 0.3)), (&INR, inr)]
    }

    // ------------------------------------------------------------------ clinical logic

    /// Records the chronic conditions that began before this routine visit and starts their
    /// medications.
    /// (Children get only the conditions of childhood diagnosed at well-child visits.)
    fn diagnose_pending(&mut self, enc: &mut Enc, child: bool) {
        for i in 0..self.chronic.len() {
            let c = &self.chronic[i];
            if c.cond.is_some() || c.onset > enc.start {
                continue;
            }
            if child && !matches!(c.kind, Kind::Asthma | Kind::Anemia | Kind::ChronicSinusitis) {
                continue;
            }
            let (kind, code, onset) = (c.kind, c.code, c.onset);
            let id = self.condition(enc, &code, onset, None);
            let meds = self.choose_meds(kind);
            self.chronic[i].cond = Some(id);
            self.chronic[i].meds = meds;
            if kind == Kind::Osteoporosis {
                self.procedure(enc, &PROC_BONE_DENSITY, 30, Some(id));
            }
            if let Some((plan, activities)) = chronic_plan(kind) {
                self.care_plan(enc, &plan, activities, id, &code, None);
            }
        }
    }

    /// The medications for a chronic condition: a first-line drug, then each add-on with its
    /// chance.
    fn choose_meds(&mut self, kind: Kind) -> Vec<Code> {
        let (first, add_ons): (Code, &[(Code, f64)]) = match kind {
            Kind::Hypertension => (MED_LISINOPRIL, &[(MED_HCTZ, 0.5), (MED_AMLODIPINE, 0.3)]),
            Kind::Diabetes => (MED_METFORMIN, &[(MED_INSULIN, 0.25)]),
            Kind::Hyperlipidemia => {
                let statin = if self.rng.chance(0.6) {
                    MED_SIMVASTATIN_10
                } else {
                    MED_SIMVASTATIN_20
                };
                (statin, &[])
            }
            Kind::Asthma => (MED_FLUTICASONE, &[(MED_ALBUTEROL, 0.8)]),
            Kind::Copd => (MED_FLUTICASONE_SALMETEROL, &[]),
            Kind::Chd => (MED_CLOPIDOGREL, &[(MED_NITROGLYCERIN, 0.5)]),
            Kind::Afib => (MED_WARFARIN, &[(MED_DIGOXIN, 0.4)]),
            Kind::BackPain | Kind::NeckPain => {
                let analgesics = [MED_ACETAMINOPHEN_325, MED_NAPROXEN, MED_HYDROCODONE];
                (*self.rng.pick(&analgesics), &[])
            }
            Kind::OaKnee => (MED_NAPROXEN, &[]),
            _ => return Vec::new(),
        };
        let mut m = vec![first];
        for (med, p) in add_ons {
            if self.rng.chance(*p) {
                m.push(*med);
            }
        }
        m
    }

    /// Renews the medications of every diagnosed chronic condition.
    fn renew_meds(&mut self, enc: &mut Enc, day: i64) {
        let last = day == self.last_routine_day && self.p.death.is_none();
        let status = if last { "active" } else { "stopped" };
        let list: Vec<(Code, Id)> = self
            .chronic
            .iter()
            .filter_map(|c| c.cond.map(|id| c.meds.iter().map(move |m| (*m, id))))
            .flatten()
            .collect();
        for (med, reason) in list {
            let prn = med == MED_ALBUTEROL || med == MED_NITROGLYCERIN;
            self.med_request(enc, &med, Some(reason), status, prn);
        }
    }

    fn has_meds(&self) -> bool {
        self.chronic
            .iter()
            .any(|c| c.cond.is_some() && !c.meds.is_empty())
    }

    fn wellness(&mut self, day: i64) {
        let t = self.clinic_time(day);
        let age = self.age(t);
        let kind = if age < 18.0 {
            ENC_WELL_CHILD
        } else {
            ENC_GENERAL_EXAM
        };
        let mut enc = self.begin(Setting::Clinic, t, |g| g.rng.int(15, 40) * 60, kind, None);
        if age >= 18.0 {
            self.diagnose_pending(&mut enc, false);
        } else {
            self.diagnose_pending(&mut enc, true);
        }
        let bmi = self.vitals_full(&enc, age);
        if age >= 18.0 && bmi >= 30.0 && !self.obesity {
            self.obesity = true;
            let t = enc.start;
            self.condition(&mut enc, &OBESITY, t, None);
            if bmi >= 40.0 {
                self.condition(&mut enc, &SEVERE_OBESITY, t, None);
            }
        }
        if age >= 12.0 {
            let status = match self.p.smoking {
                Smoking::Never => &NEVER_SMOKER,
                Smoking::Former => &EX_SMOKER,
                Smoking::Current if age < 18.0 => &NEVER_SMOKER,
                Smoking::Current => &DAILY_SMOKER,
            };
            self.obs_cc(&enc, &CAT_SOCIAL, &TOBACCO_STATUS, status);
            if self.rng.chance(0.6) {
                let score = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0][self.rng.below(8) as usize];
                self.obs_q(&enc, &CAT_SURVEY, &PHQ2_SCORE, score);
                self.procedure(&mut enc, &PROC_DEPRESSION_SCREENING, 5, None);
            }
        }
        self.wellness_labs(&enc, t, age);
        self.vaccinate(&mut enc, t, age);
        self.screenings(&mut enc, t, age);
        if self.has_meds() {
            self.procedure(&mut enc, &PROC_MED_RECONCILIATION, 10, None);
            self.renew_meds(&mut enc, day);
        }
        self.finish(enc);
    }

    fn wellness_labs(&mut self, enc: &Enc, t: i64, age: f64) {
        if age < 18.0 {
            if (0.9..1.4).contains(&age) {
                let hgb = self.rng.normal_in(12.0, 0.8, 9.5, 14.5);
                let hct = hgb * 2.95 + self.rng.normal(0.0, 0.8);
                self.panel(enc, &PANEL_HH, &[(&HEMOGLOBIN, hgb), (&HEMATOCRIT_B, hct)]);
            }
            return;
        }
        let risk = self.has(Kind::Hyperlipidemia, t)
            || self.has(Kind::Diabetes, t)
            || self.has(Kind::Chd, t);
        if age >= 40.0 || risk || self.rng.chance(0.6) {
            let v = self.lipids(t, age);
            self.panel(enc, &PANEL_LIPID, &v);
        }
        let kidney = self.has(Kind::Ckd, t);
        if age >= 40.0 || kidney {
            let v = self.metabolic(t, age, true);
            self.panel(enc, &PANEL_CMP, &v);
        } else if age >= 30.0
            || self.has(Kind::Hypertension, t)
            || self.has(Kind::Diabetes, t)
            || self.rng.chance(0.6)
        {
            let v = self.metabolic(t, age, false);
            self.panel(enc, &PANEL_BMP, &v);
        }
        if age >= 40.0 || self.has(Kind::Anemia, t) || self.rng.chance(0.7) {
            self.blood_count(enc, t, age, 0.7);
        }
        if self.has(Kind::Diabetes, t)
            || self.has(Kind::Prediabetes, t)
            || (age >= 40.0 && self.rng.chance(0.5))
        {
            let v = self.a1c(t);
            self.obs_q(enc, &CAT_LAB, &HBA1C, v);
        }
        if self.has(Kind::Diabetes, t) {
            let v = self.microalbumin(t);
            self.obs_q(enc, &CAT_LAB, &MICROALBUMIN_RATIO, v);
        }
        if self.has(Kind::Diabetes, t)
            || self.has(Kind::Ckd, t)
            || (age >= 65.0 && self.rng.chance(0.5))
        {
            self.urinalysis(enc, t);
        }
    }

    /// A complete blood count, with a white-cell differential with probability `differential`.
    fn blood_count(&mut self, enc: &Enc, t: i64, age: f64, differential: f64) {
        let v = self.cbc(t, age);
        let wbc = v[0].1;
        self.panel(enc, &PANEL_CBC, &v);
        if self.rng.chance(differential) {
            let v = self.differential(wbc);
            self.panel(enc, &PANEL_DIFFERENTIAL, &v);
        }
    }

    fn vaccinate(&mut self, enc: &mut Enc, t: i64, age: f64) {
        let age_days = (t - self.p.birth) / DAY;
        let mut given: Vec<Code> = Vec::new();
        for (i, (vax, due)) in CHILD_VACCINES.iter().enumerate() {
            // Doses due long before the window were given before the records start.
            let due_t = self.p.birth + due * DAY;
            if !self.vaccines[i]
                && age_days >= *due
                && due_t >= self.win.start - 120 * DAY
                && !given.contains(vax)
            {
                self.vaccines[i] = true;
                given.push(*vax);
            }
        }
        let flu = match age {
            a if a < 0.5 => 0.0,
            a if a < 18.0 => 0.8,
            a if a < 65.0 => 0.65,
            _ => 0.9,
        };
        if self.rng.chance(flu) && !given.contains(&VAX_FLU) {
            given.push(VAX_FLU);
        }
        if age >= 19.0 && self.rng.chance(0.1) {
            given.push(VAX_TD);
        }
        if (60.0..61.2).contains(&age) && self.rng.chance(0.6) {
            given.push(VAX_ZOSTER);
        }
        if (65.0..66.2).contains(&age) {
            given.push(VAX_PCV13);
        }
        if (66.0..67.2).contains(&age) {
            given.push(VAX_PPSV23);
        }
        for v in given {
            self.immunization(enc, &v);
        }
    }

    fn screenings(&mut self, enc: &mut Enc, t: i64, age: f64) {
        if (50.0..75.0).contains(&age) && !self.colonoscopy && self.rng.chance(0.25) {
            self.colonoscopy = true;
            self.procedure(enc, &PROC_COLONOSCOPY, 45, None);
        }
        if self.p.female && (50.0..75.0).contains(&age) && self.rng.chance(0.5) {
            self.procedure(enc, &PROC_MAMMOGRAPHY, 20, None);
        }
        if self.has(Kind::Copd, t) && self.treated(Kind::Copd) {
            let r = self.chronic_of(Kind::Copd).and_then(|c| c.cond);
            self.procedure(enc, &PROC_SPIROMETRY, 20, r);
        }
        if (self.has(Kind::Chd, t) || self.has(Kind::Afib, t))
            && (self.treated(Kind::Chd) || self.treated(Kind::Afib))
        {
            self.procedure(enc, &PROC_ECG, 15, None);
        }
    }

    fn follow_up(&mut self, day: i64) {
        let t = self.clinic_time(day);
        let age = self.age(t);
        let serious = [
            Kind::Hypertension,
            Kind::Diabetes,
            Kind::Prediabetes,
            Kind::Hyperlipidemia,
            Kind::Chd,
            Kind::Afib,
            Kind::Ckd,
            Kind::Copd,
        ]
        .iter()
        .any(|k| self.has(*k, t));
        let kind = if serious {
            if self.rng.chance(0.5) {
                ENC_CHECK_UP
            } else {
                ENC_FOLLOW_UP
            }
        } else if self.has(Kind::Asthma, t) {
            ENC_ASTHMA_FOLLOW_UP
        } else {
            ENC_PROBLEM
        };
        let mut enc = self.begin(Setting::Clinic, t, |g| g.rng.int(15, 30) * 60, kind, None);
        self.diagnose_pending(&mut enc, false);
        // Vital signs.
        let h = self.height(age);
        let w = self.weight(age, h);
        self.obs_q(&enc, &CAT_VITAL, &BODY_HEIGHT, h);
        self.obs_q(&enc, &CAT_VITAL, &BODY_WEIGHT, w);
        self.obs_q(&enc, &CAT_VITAL, &BMI, w / (h / 100.0 * h / 100.0));
        let (s, d) = self.blood_pressure(t, age);
        self.obs_bp(&enc, s, d);
        let hr = self.heart_rate(age, false);
        self.obs_q(&enc, &CAT_VITAL, &HEART_RATE, hr);
        let rr = self.respiratory_rate(age, false);
        self.obs_q(&enc, &CAT_VITAL, &RESPIRATORY_RATE, rr);
        let pain = self.pain_score(t, false);
        self.obs_q(&enc, &CAT_VITAL, &PAIN_SEVERITY, pain);
        // Monitoring labs.
        if self.has(Kind::Diabetes, t) {
            let v = self.a1c(t);
            self.obs_q(&enc, &CAT_LAB, &HBA1C, v);
        }
        let kidney = self.has(Kind::Ckd, t);
        if kidney && self.rng.chance(0.5) {
            let v = self.metabolic(t, age, true);
            self.panel(&enc, &PANEL_CMP, &v);
        } else if (kidney || self.has(Kind::Hypertension, t) || self.has(Kind::Diabetes, t))
            && self.rng.chance(0.5)
        {
            let v = self.metabolic(t, age, false);
            self.panel(&enc, &PANEL_BMP, &v);
        }
        if (self.has(Kind::Anemia, t) || kidney) && self.rng.chance(0.4) {
            self.blood_count(&enc, t, age, 0.3);
        }
        if self.has(Kind::Afib, t) && self.treated(Kind::Afib) {
            let v = self.coagulation(t);
            self.panel(&enc, &PANEL_PT, &v);
        }
        if (self.has(Kind::Chd, t) || self.has(Kind::Hyperlipidemia, t)) && self.rng.chance(0.5) {
            let v = self.lipids(t, age);
            self.panel(&enc, &PANEL_LIPID, &v);
        }
        if self.has(Kind::Prediabetes, t) && self.rng.chance(0.5) {
            let v = self.a1c(t);
            self.obs_q(&enc, &CAT_LAB, &HBA1C, v);
        }
        self.renew_meds(&mut enc, day);
        self.finish(enc);
    }

    fn acute(&mut self, day: i64) {
        let t = self.clinic_time(day);
        let age = self.age(t);
        let a = self.rng.pick_weighted(&ACUTE, |a| {
            if a.female_only && !self.p.female {
                0.0
            } else if age < 18.0 {
                a.child
            } else {
                a.adult
            }
        });
        let dur = |g: &mut Self| g.rng.int(15, 40) * 60;
        let mut enc = self.begin(Setting::Clinic, t, dur, ENC_SYMPTOM, Some(&a.code));
        let resolve = t + self.rng.int(7, 21) * DAY;
        let main = self.condition(&mut enc, &a.code, t, Some(resolve));
        let mut fever = false;
        for s in a.symptoms {
            if self.rng.chance(0.25) {
                fever |= *s == FEVER;
                self.condition(&mut enc, s, t, Some(resolve));
            }
        }
        let respiratory = a.code == BRONCHITIS;
        let bp = age >= 18.0 && self.rng.chance(0.5);
        self.vitals_sick(&enc, age, fever, respiratory.then_some(96.5), bp);
        if respiratory {
            self.care_plan(
                &enc,
                &PLAN_RESPIRATORY,
                &[ACT_AVOID_EXERCISE, ACT_BREATHING],
                main,
                &a.code,
                Some(resolve),
            );
        } else if a.code == CYSTITIS {
            self.care_plan(
                &enc,
                &PLAN_UTI,
                &[ACT_URINE_SCREENING],
                main,
                &a.code,
                Some(resolve),
            );
        }
        if let Some(p) = &a.procedure
            && self.rng.chance(0.6)
        {
            self.procedure(&mut enc, p, 15, Some(main));
        }
        if a.code != CYSTITIS && a.code != VIRAL_SINUSITIS && self.rng.chance(0.25) {
            self.blood_count(&enc, t, age, 0.8);
        }
        if self.rng.chance(a.med_chance) {
            let mut med = *self.rng.pick(a.meds);
            if age < 12.0 && med == MED_ACETAMINOPHEN_325 {
                med = MED_ACETAMINOPHEN_160;
            } else if age < 12.0 && med == MED_IBUPROFEN_200 {
                med = MED_IBUPROFEN_100;
            }
            let status = if t + 30 * DAY < self.win.end {
                "completed"
            } else {
                "active"
            };
            self.med_request(&mut enc, &med, Some(main), status, false);
        }
        self.finish(enc);
    }

    fn injury(&mut self, day: i64) {
        let t = self.any_time(day);
        let age = self.age(t);
        let (code, _, procs) = *self.rng.pick_weighted(&INJURIES, |i| {
            if i.0 == WHIPLASH && age < 16.0 {
                0.0
            } else {
                i.1
            }
        });
        let dur = |g: &mut Self| g.rng.int(60, 240) * 60;
        let mut enc = self.begin(Setting::Emergency, t, dur, ENC_ER, Some(&code));
        let heal = t + self.rng.int(21, 56) * DAY;
        let cond = self.condition(&mut enc, &code, t, Some(heal));
        let (plan, activities) = injury_plan(&code);
        self.care_plan(&enc, &plan, activities, cond, &code, Some(heal));
        let hr = self.heart_rate(age, false) + 8.0;
        self.obs_q(&enc, &CAT_VITAL, &HEART_RATE, hr);
        if age >= 3.0 {
            let (s, d) = self.blood_pressure(t, age);
            self.obs_bp(&enc, s + 6.0, d + 3.0);
            let pain = self.pain_score(t, true);
            self.obs_q(&enc, &CAT_VITAL, &PAIN_SEVERITY, pain);
        }
        for p in procs {
            self.procedure(&mut enc, p, 30, Some(cond));
        }
        if age >= 12.0 && self.rng.chance(0.7) {
            self.med_admin(&enc, &MED_ACETAMINOPHEN_500, t + 1800, Some(cond));
        }
        if self.rng.chance(0.6) {
            let med = if age < 12.0 {
                MED_IBUPROFEN_100
            } else {
                MED_IBUPROFEN_200
            };
            self.med_request(&mut enc, &med, Some(cond), "completed", true);
        }
        self.finish(enc);
    }

    fn covid(&mut self, day: i64) {
        let t = self.clinic_time(day);
        let age = self.age(t);
        let reason = Some(&SUSPECTED_COVID);
        let mut enc = self.begin(Setting::Clinic, t, |_| 1800, ENC_SYMPTOM, reason);
        self.condition(&mut enc, &SUSPECTED_COVID, t, Some(t + 3600));
        let resolve = t + self.rng.int(14, 28) * DAY;
        let mut fever = false;
        for (s, p) in [
            (FEVER, 0.8),
            (COUGH, 0.7),
            (LOSS_OF_TASTE, 0.45),
            (FATIGUE, 0.5),
        ] {
            if self.rng.chance(p) {
                fever |= s == FEVER;
                self.condition(&mut enc, &s, t, Some(resolve));
            }
        }
        self.vitals_sick(&enc, age, fever, Some(96.0), true);
        let positive = self.rng.chance(0.75);
        let result = self.obs_cc(
            &enc,
            &CAT_LAB,
            &SARS_COV_2_RNA,
            if positive { &DETECTED } else { &NOT_DETECTED },
        );
        self.report(&enc, &PANEL_SARS_COV_2, &[result]);
        let covid = positive.then(|| self.condition(&mut enc, &COVID, t, Some(resolve)));
        if let Some(c) = covid {
            self.care_plan(
                &enc,
                &PLAN_INFECTIOUS,
                &[ACT_AIRBORNE_PRECAUTIONS, ACT_ISOLATION],
                c,
                &COVID,
                Some(resolve),
            );
        }
        self.finish(enc);
        let severe = match age {
            a if a >= 60.0 => 0.25,
            a if a >= 40.0 => 0.08,
            _ => 0.02,
        };
        if let Some(c) = covid
            && self.rng.chance(severe)
        {
            let d = day + self.rng.int(2, 5);
            self.admission(d, Some(c));
        }
    }

    /// A hospital stay: for COVID-19 (isolation) when `covid` is given, else pneumonia.
    fn admission(&mut self, day: i64, covid: Option<Id>) {
        let stay = if covid.is_some() {
            self.rng.int(4, 9)
        } else {
            self.rng.int(2, 5)
        };
        let stay = stay.min(self.last_day - day);
        if stay < 1 {
            return;
        }
        let t = self.any_time(day);
        let age = self.age(t);
        let kind = if covid.is_some() {
            ENC_ISOLATION
        } else {
            ENC_ADMISSION
        };
        let reason = if covid.is_some() { COVID } else { PNEUMONIA };
        let mut enc = self.begin(Setting::Inpatient, t, |_| stay * DAY, kind, Some(&reason));
        let discharge = t + stay * DAY;
        let recovered = discharge + self.rng.int(7, 21) * DAY;
        let pneumonia = self.condition(&mut enc, &PNEUMONIA, t, Some(recovered));
        let hypoxemia = self.condition(&mut enc, &HYPOXEMIA, t, Some(discharge));
        if covid.is_some() && self.rng.chance(0.6) {
            self.condition(&mut enc, &RESPIRATORY_DISTRESS, t, Some(discharge));
        }
        self.procedure(&mut enc, &PROC_CHEST_XRAY, 20, Some(pneumonia));
        for d in 0..stay {
            let dt = if d == 0 {
                t
            } else {
                t + d * DAY - (t + self.p.tz as i64 * 60).rem_euclid(DAY) + 7 * 3600
            };
            enc.vit = self.stamp(dt, 0, 600);
            enc.lab = self.stamp(dt, 1800, 3 * 3600);
            let o2 = 89.0 + 7.0 * d as f64 / stay as f64;
            self.vitals_sick(&enc, age, d < stay / 2, Some(o2), true);
            if d < stay - 1 || d == 0 {
                self.procedure_at(&mut enc, &PROC_OXYGEN, dt, 60 * 20, Some(hypoxemia));
                if covid.is_some() {
                    self.procedure_at(&mut enc, &PROC_PRONE, dt + 3600, 120, Some(hypoxemia));
                }
            }
            self.blood_count(&enc, dt, age, 0.5);
            let v = self.metabolic(dt, age, d % 2 == 0);
            let panel = if d % 2 == 0 { &PANEL_CMP } else { &PANEL_BMP };
            self.panel(&enc, panel, &v);
            if covid.is_some() && d % 2 == 0 {
                let ferritin = self.rng.normal_in(650.0, 250.0, 80.0, 3000.0);
                self.panel(&enc, &PANEL_IRON, &[(&FERRITIN, ferritin)]);
                let trop = self.rng.normal_in(6.0, 4.0, 1.0, 80.0);
                self.panel(&enc, &PANEL_TROPONIN, &[(&TROPONIN, trop)]);
                let v = self.coagulation(dt);
                self.panel(&enc, &PANEL_PT, &v);
                for (m, mean, sd, lo, hi) in [
                    (&D_DIMER, 1.5, 0.9, 0.2, 8.0),
                    (&CRP, 60.0, 30.0, 3.0, 250.0),
                    (&LDH, 320.0, 70.0, 150.0, 700.0),
                ] {
                    let v = self.rng.normal_in(mean, sd, lo, hi);
                    self.obs_q(&enc, &CAT_LAB, m, v);
                }
            }
            let reason = covid.unwrap_or(pneumonia);
            if covid.is_some() {
                self.med_admin(&enc, &MED_ENOXAPARIN, dt + 3600, Some(reason));
            } else if self.rng.chance(0.5) {
                self.med_admin(&enc, &MED_ALBUTEROL_NEB, dt + 3600, Some(reason));
            }
            if self.rng.chance(0.6) {
                self.med_admin(&enc, &MED_ACETAMINOPHEN_500, dt + 2 * 3600, Some(reason));
            }
        }
        enc.vit = self.stamp(t, 0, 600);
        self.finish(enc);
    }

    fn prenatal(&mut self, day: i64, week: u8) {
        let t = self.clinic_time(day);
        let age = self.age(t);
        let kind = if week == 8 {
            ENC_PRENATAL_INITIAL
        } else {
            ENC_PRENATAL
        };
        let mut enc = self.begin(Setting::Clinic, t, |_| 1800, kind, None);
        if week == 8 {
            let end = self.pregnancy_end;
            let id = self.condition(&mut enc, &PREGNANCY, t, Some(end));
            self.pregnancy = Some(id);
            self.care_plan(
                &enc,
                &PLAN_ANTENATAL,
                &[
                    ACT_ANTENATAL_EDUCATION,
                    ACT_ANTENATAL_RISK,
                    ACT_ANTENATAL_BLOOD_TESTS,
                ],
                id,
                &PREGNANCY,
                Some(end),
            );
            self.urinalysis(&enc, t);
            for p in [
                PROC_PREGNANCY_TEST,
                PROC_FETAL_ULTRASOUND,
                PROC_BLOOD_TYPING,
                PROC_HEP_B_TEST,
                PROC_HIV_TEST,
                PROC_SYPHILIS_TEST,
                PROC_RUBELLA,
                PROC_URINE_CULTURE,
            ] {
                self.procedure(&mut enc, &p, 10, Some(id));
            }
            let v = self.cbc(t, age);
            self.panel(&enc, &PANEL_CBC, &v);
        }
        let reason = self.pregnancy;
        let h = self.height(age);
        let w = self.weight(age, h) + 0.45 * week as f64;
        self.obs_q(&enc, &CAT_VITAL, &BODY_WEIGHT, w);
        let (s, d) = self.blood_pressure(t, age);
        self.obs_bp(&enc, s, d);
        let hr = self.heart_rate(age, false) + 6.0;
        self.obs_q(&enc, &CAT_VITAL, &HEART_RATE, hr);
        if week > 8 {
            self.procedure(&mut enc, &PROC_FUNDAL_HEIGHT, 5, reason);
            self.procedure(&mut enc, &PROC_FETAL_HEART, 5, reason);
        }
        match week {
            16 => {
                self.procedure(&mut enc, &PROC_AFP, 10, reason);
            }
            20 => {
                self.procedure(&mut enc, &PROC_FETAL_ANATOMY, 30, reason);
            }
            28 => {
                self.procedure(&mut enc, &PROC_DTP_VACCINATION, 5, reason);
                self.immunization(&mut enc, &VAX_TDAP);
                let hgb = self.rng.normal_in(11.8, 0.8, 9.0, 14.0);
                let hct = hgb * 2.95 + self.rng.normal(0.0, 0.8);
                self.panel(&enc, &PANEL_HH, &[(&HEMOGLOBIN, hgb), (&HEMATOCRIT_B, hct)]);
            }
            _ => {}
        }
        self.finish(enc);
    }

    fn miscarriage(&mut self, day: i64) {
        let t = self.any_time(day);
        let age = self.age(t);
        let reason = Some(&MISCARRIAGE);
        let mut enc = self.begin(Setting::Clinic, t, |_| 3600, ENC_PRENATAL, reason);
        let heal = t + 30 * DAY;
        self.condition(&mut enc, &MISCARRIAGE, t, Some(heal));
        self.vitals_sick(&enc, age, false, None, true);
        self.pregnancy = None;
        self.finish(enc);
    }

    fn delivery(&mut self, day: i64) {
        let t = self.any_time(day);
        let age = self.age(t);
        let reason = self.pregnancy;
        // The length of stay is drawn after the practitioner.
        let stay = |g: &mut Self| {
            let stay = if g.rng.chance(0.3) { 3 } else { 2 };
            stay.min(g.last_day - day).max(1) * DAY
        };
        let mut enc = self.begin(Setting::Inpatient, t, stay, ENC_OBSTETRIC, None);
        if self.rng.chance(0.6) {
            self.procedure(&mut enc, &PROC_EPIDURAL, 30, reason);
        }
        let birth = if self.rng.chance(0.3) {
            PROC_CESAREAN
        } else {
            PROC_CHILDBIRTH
        };
        self.procedure(&mut enc, &birth, 120, reason);
        self.vitals_sick(&enc, age, false, Some(97.5), true);
        let v = self.cbc(t, age);
        self.panel(&enc, &PANEL_CBC, &v);
        self.med_admin(&enc, &MED_ACETAMINOPHEN_500, t + 6 * 3600, reason);
        self.pregnancy = None;
        self.finish(enc);
    }

    fn postnatal(&mut self, day: i64) {
        let t = self.clinic_time(day);
        let age = self.age(t);
        let mut enc = self.begin(Setting::Clinic, t, |_| 1800, ENC_POSTNATAL, None);
        let h = self.height(age);
        let w = self.weight(age, h) + 3.0;
        self.obs_q(&enc, &CAT_VITAL, &BODY_WEIGHT, w);
        let (s, d) = self.blood_pressure(t, age);
        self.obs_bp(&enc, s, d);
        let score = [0.0, 0.0, 1.0, 1.0, 2.0, 3.0][self.rng.below(6) as usize];
        self.obs_q(&enc, &CAT_SURVEY, &PHQ2_SCORE, score);
        self.procedure(&mut enc, &PROC_DEPRESSION_SCREENING, 5, None);
        self.finish(enc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates() {
        assert_eq!(interp(&HEAD, -1.0), 34.5);
        assert!((interp(&HEAD, 0.125) - 37.5).abs() < 1e-9);
        assert_eq!(interp(&HEAD, 10.0), 49.5);
    }
}
