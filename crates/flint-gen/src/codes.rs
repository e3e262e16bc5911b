//! Code systems and the codes the generator uses: LOINC, SNOMED CT, RxNorm, CVX, UCUM and HL7
//! terminology. Codes and displays are the ones the Synthea reference data uses (plus a few
//! standard ones it lacks, e.g. PHQ-2 and the SARS-CoV-2 PCR result).

/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// RxNorm.
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// CVX vaccine codes.
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
/// UCUM units.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// Observation categories.
pub const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// HL7 v3 ActCode (encounter classes).
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// HL7 v2 table 0074 (diagnostic service sections).
pub const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
/// HL7 v2 table 0203 (identifier types).
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// National Provider Identifier.
pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
/// US social security numbers.
pub const SSN: &str = "http://hl7.org/fhir/sid/us-ssn";
/// Identifier system of the generator's medical record numbers.
pub const MRN_SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5.99999.1";

/// A coding: system, code and display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// Code system URI.
    pub system: &'static str,
    /// The code.
    pub code: &'static str,
    /// Human-readable display.
    pub display: &'static str,
}

/// A quantitative observation kind: its LOINC code, UCUM unit and decimals.
#[derive(Clone, Copy, Debug)]
pub struct Measure {
    /// The observation code.
    pub code: Code,
    /// UCUM unit (used as both `unit` and `code`).
    pub unit: &'static str,
    /// Decimals written.
    pub places: usize,
}

const fn c(system: &'static str, code: &'static str, display: &'static str) -> Code {
    Code {
        system,
        code,
        display,
    }
}
const fn sct(code: &'static str, display: &'static str) -> Code {
    c(SNOMED, code, display)
}
const fn loinc(code: &'static str, display: &'static str) -> Code {
    c(LOINC, code, display)
}
const fn rx(code: &'static str, display: &'static str) -> Code {
    c(RXNORM, code, display)
}
const fn cvx(code: &'static str, display: &'static str) -> Code {
    c(CVX, code, display)
}
const fn m(
    code: &'static str,
    display: &'static str,
    unit: &'static str,
    places: usize,
) -> Measure {
    Measure {
        code: loinc(code, display),
        unit,
        places,
    }
}

// ---------------------------------------------------------------- categories and classes

/// Observation category vital-signs.
pub const CAT_VITAL: Code = c(OBS_CATEGORY, "vital-signs", "Vital Signs");
/// Observation category laboratory.
pub const CAT_LAB: Code = c(OBS_CATEGORY, "laboratory", "Laboratory");
/// Observation category survey.
pub const CAT_SURVEY: Code = c(OBS_CATEGORY, "survey", "Survey");
/// Observation category social-history.
pub const CAT_SOCIAL: Code = c(OBS_CATEGORY, "social-history", "Social History");
/// DiagnosticReport category LAB.
pub const DR_LAB: Code = c(V2_0074, "LAB", "Laboratory");
/// Encounter class ambulatory.
pub const CLASS_AMB: Code = c(ACT_CODE, "AMB", "ambulatory");
/// Encounter class emergency.
pub const CLASS_EMER: Code = c(ACT_CODE, "EMER", "emergency");
/// Encounter class inpatient.
pub const CLASS_IMP: Code = c(ACT_CODE, "IMP", "inpatient encounter");
/// Encounter participant type primary performer.
pub const PPRF: Code = c(
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
    "PPRF",
    "primary performer",
);
/// Condition clinical status active.
pub const CLINICAL_ACTIVE: Code = c(
    "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "active",
    "Active",
);
/// Condition clinical status resolved.
pub const CLINICAL_RESOLVED: Code = c(
    "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "resolved",
    "Resolved",
);
/// Condition verification status confirmed.
pub const VERIFIED: Code = c(
    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    "confirmed",
    "Confirmed",
);
/// Condition category encounter-diagnosis.
pub const ENCOUNTER_DIAGNOSIS: Code = c(
    "http://terminology.hl7.org/CodeSystem/condition-category",
    "encounter-diagnosis",
    "Encounter Diagnosis",
);
/// Identifier type medical record number.
pub const ID_MR: Code = c(V2_0203, "MR", "Medical Record Number");
/// Identifier type social security number.
pub const ID_SS: Code = c(V2_0203, "SS", "Social Security Number");
/// Organization type healthcare provider.
pub const ORG_PROV: Code = c(
    "http://terminology.hl7.org/CodeSystem/organization-type",
    "prov",
    "Healthcare Provider",
);
/// Claim type professional.
pub const CLAIM_PROFESSIONAL: Code = c(
    "http://terminology.hl7.org/CodeSystem/claim-type",
    "professional",
    "Professional",
);
/// Claim type institutional.
pub const CLAIM_INSTITUTIONAL: Code = c(
    "http://terminology.hl7.org/CodeSystem/claim-type",
    "institutional",
    "Institutional",
);
/// Claim type pharmacy.
pub const CLAIM_PHARMACY: Code = c(
    "http://terminology.hl7.org/CodeSystem/claim-type",
    "pharmacy",
    "Pharmacy",
);
/// Claim priority normal.
pub const PRIORITY_NORMAL: Code = c(
    "http://terminology.hl7.org/CodeSystem/processpriority",
    "normal",
    "Normal",
);
/// Adjudication category submitted amount.
pub const ADJ_SUBMITTED: Code = c(
    "http://terminology.hl7.org/CodeSystem/adjudication",
    "submitted",
    "Submitted Amount",
);
/// Diagnosis type principal (claims).
pub const DIAG_PRINCIPAL: Code = c(
    "http://terminology.hl7.org/CodeSystem/ex-diagnosistype",
    "principal",
    "Principal Diagnosis",
);
/// DocumentReference category clinical note.
pub const DOC_CLINICAL_NOTE: Code = c(
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "clinical-note",
    "Clinical Note",
);
/// LOINC history and physical note (note reports and documents).
pub const NOTE_HP: Code = loinc("34117-2", "History and physical note");
/// Dose rate type ordered.
pub const DOSE_ORDERED: Code = c(
    "http://terminology.hl7.org/CodeSystem/dose-rate-type",
    "ordered",
    "Ordered",
);

/// Marital statuses (v3).
pub const MARITAL: [Code; 4] = [
    c(
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
        "S",
        "Never Married",
    ),
    c(
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
        "M",
        "Married",
    ),
    c(
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
        "D",
        "Divorced",
    ),
    c(
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
        "W",
        "Widowed",
    ),
];
/// Communication language English (US).
pub const LANG_EN: Code = c("urn:ietf:bcp:47", "en-US", "English (United States)");
/// Communication language Spanish.
pub const LANG_ES: Code = c("urn:ietf:bcp:47", "es", "Spanish");

/// US Core care plan category system.
pub const CAREPLAN_CATEGORY: &str = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category";
/// Care team role patient.
pub const ROLE_PATIENT: Code = sct("116154003", "Patient");
/// Care team role healthcare professional.
pub const ROLE_PROFESSIONAL: Code = sct("223366009", "Healthcare professional (occupation)");
/// Care team role healthcare services.
pub const ROLE_SERVICES: Code = sct("224891009", "Healthcare services (qualifier value)");

// ---------------------------------------------------------------- care plans and activities

/// Lifestyle education regarding hypertension.
pub const PLAN_HYPERTENSION: Code = sct("443402002", "Lifestyle education regarding hypertension");
/// Diabetes self management plan.
pub const PLAN_DIABETES: Code = sct("698360004", "Diabetes self management plan");
/// Hyperlipidemia clinical management plan.
pub const PLAN_HYPERLIPIDEMIA: Code = sct("736285004", "Hyperlipidemia clinical management plan");
/// COPD clinical management plan.
pub const PLAN_COPD: Code = sct(
    "412776001",
    "Chronic obstructive pulmonary disease clinical management plan",
);
/// Asthma self management.
pub const PLAN_ASTHMA: Code = sct("699728000", "Asthma self management");
/// Musculoskeletal care.
pub const PLAN_MUSCULOSKELETAL: Code = sct("408869004", "Musculoskeletal care");
/// Respiratory therapy.
pub const PLAN_RESPIRATORY: Code = sct("53950000", "Respiratory therapy");
/// Urinary tract infection care.
pub const PLAN_UTI: Code = sct("869761000000107", "Urinary tract infection care");
/// Infectious disease care plan.
pub const PLAN_INFECTIOUS: Code = sct(
    "736376001",
    "Infectious disease care plan (record artifact)",
);
/// Routine antenatal care.
pub const PLAN_ANTENATAL: Code = sct("134435003", "Routine antenatal care");
/// Fracture care.
pub const PLAN_FRACTURE: Code = sct("385691007", "Fracture care");
/// Wound care.
pub const PLAN_WOUND: Code = sct("225358003", "Wound care");
/// Head injury rehabilitation.
pub const PLAN_HEAD_INJURY: Code = sct("47387005", "Head injury rehabilitation");
/// Physical therapy procedure.
pub const PLAN_PHYSICAL_THERAPY: Code = sct("91251008", "Physical therapy procedure");
/// Dietary approaches to stop hypertension diet.
pub const ACT_DASH_DIET: Code = sct(
    "1151000175103",
    "Dietary approaches to stop hypertension diet",
);
/// Prescribed activity/exercise education.
pub const ACT_EXERCISE_EDUCATION: Code = sct("386463000", "Prescribed activity/exercise education");
/// Diabetic diet.
pub const ACT_DIABETIC_DIET: Code = sct("160670007", "Diabetic diet");
/// Exercise therapy.
pub const ACT_EXERCISE_THERAPY: Code = sct("229065009", "Exercise therapy");
/// Low calorie diet.
pub const ACT_LOW_CALORIE_DIET: Code = sct("77806000", "Low calorie diet");
/// Pulmonary rehabilitation.
pub const ACT_PULMONARY_REHAB: Code = sct("15081005", "Pulmonary rehabilitation (regime/therapy)");
/// Smoking cessation education.
pub const ACT_SMOKING_CESSATION: Code = sct("225323000", "Smoking cessation education");
/// Allergy education.
pub const ACT_ALLERGY_EDUCATION: Code = sct("58332002", "Allergy education");
/// Stretching exercises.
pub const ACT_STRETCHING: Code = sct("229070002", "Stretching exercises");
/// Heat therapy.
pub const ACT_HEAT_THERAPY: Code = sct("266694003", "Heat therapy");
/// Recommendation to avoid exercise.
pub const ACT_AVOID_EXERCISE: Code = sct("304510005", "Recommendation to avoid exercise");
/// Deep breathing and coughing exercises.
pub const ACT_BREATHING: Code = sct("371605008", "Deep breathing and coughing exercises");
/// Urine screening.
pub const ACT_URINE_SCREENING: Code = sct("171245007", "Urine screening");
/// Airborne precautions.
pub const ACT_AIRBORNE_PRECAUTIONS: Code = sct("409524006", "Airborne precautions (procedure)");
/// Isolation of infected patient.
pub const ACT_ISOLATION: Code = sct("361235007", "Isolation of infected patient (procedure)");
/// Antenatal education.
pub const ACT_ANTENATAL_EDUCATION: Code = sct("135892000", "Antenatal education");
/// Antenatal risk assessment.
pub const ACT_ANTENATAL_RISK: Code = sct("713076009", "Antenatal risk assessment");
/// Antenatal blood tests.
pub const ACT_ANTENATAL_BLOOD_TESTS: Code = sct("312404004", "Antenatal blood tests");
/// Dressing change management.
pub const ACT_DRESSING_CHANGE: Code = sct("385949008", "Dressing change management");
/// Recommendation to rest.
pub const ACT_REST: Code = sct("183051005", "Recommendation to rest");
/// Rest, ice, compression and elevation.
pub const ACT_RICE: Code = sct(
    "229586001",
    "Rest, ice, compression and elevation treatment programme",
);

// ---------------------------------------------------------------- encounter types

/// General examination of patient.
pub const ENC_GENERAL_EXAM: Code = sct("162673000", "General examination of patient (procedure)");
/// Well child visit.
pub const ENC_WELL_CHILD: Code = sct("410620009", "Well child visit (procedure)");
/// Encounter for check up.
pub const ENC_CHECK_UP: Code = sct("185349003", "Encounter for check up (procedure)");
/// Follow-up encounter.
pub const ENC_FOLLOW_UP: Code = sct("390906007", "Follow-up encounter (procedure)");
/// Encounter for symptom.
pub const ENC_SYMPTOM: Code = sct("185345009", "Encounter for symptom (procedure)");
/// Encounter for problem.
pub const ENC_PROBLEM: Code = sct("185347001", "Encounter for problem (procedure)");
/// Emergency room admission.
pub const ENC_ER: Code = sct("50849002", "Emergency room admission (procedure)");
/// Hospital admission for isolation.
pub const ENC_ISOLATION: Code = sct("1505002", "Hospital admission for isolation (procedure)");
/// Hospital admission.
pub const ENC_ADMISSION: Code = sct("32485007", "Hospital admission (procedure)");
/// Prenatal initial visit.
pub const ENC_PRENATAL_INITIAL: Code = sct("424441002", "Prenatal initial visit");
/// Prenatal visit.
pub const ENC_PRENATAL: Code = sct("424619006", "Prenatal visit");
/// Obstetric emergency hospital admission.
pub const ENC_OBSTETRIC: Code = sct("183460006", "Obstetric emergency hospital admission");
/// Postnatal visit.
pub const ENC_POSTNATAL: Code = sct("169762003", "Postnatal visit");
/// Asthma follow-up.
pub const ENC_ASTHMA_FOLLOW_UP: Code = sct("394701000", "Asthma follow-up");

// ---------------------------------------------------------------- conditions

/// Hypertension.
pub const HYPERTENSION: Code = sct("59621000", "Hypertension");
/// Prediabetes.
pub const PREDIABETES: Code = sct("15777000", "Prediabetes");
/// Diabetes.
pub const DIABETES: Code = sct("44054006", "Diabetes");
/// Hyperlipidemia.
pub const HYPERLIPIDEMIA: Code = sct("55822004", "Hyperlipidemia");
/// Hypertriglyceridemia.
pub const HYPERTRIGLYCERIDEMIA: Code = sct("302870006", "Hypertriglyceridemia (disorder)");
/// Anemia.
pub const ANEMIA: Code = sct("271737000", "Anemia (disorder)");
/// Asthma (adult onset).
pub const ASTHMA: Code = sct("195967001", "Asthma");
/// Childhood asthma.
pub const CHILDHOOD_ASTHMA: Code = sct("233678006", "Childhood asthma");
/// Chronic obstructive bronchitis.
pub const COPD: Code = sct("185086009", "Chronic obstructive bronchitis (disorder)");
/// Coronary heart disease.
pub const CHD: Code = sct("53741008", "Coronary Heart Disease");
/// Atrial fibrillation.
pub const AFIB: Code = sct("49436004", "Atrial Fibrillation");
/// Chronic kidney disease stage 1.
pub const CKD1: Code = sct("431855005", "Chronic kidney disease stage 1 (disorder)");
/// Chronic kidney disease stage 2.
pub const CKD2: Code = sct("431856006", "Chronic kidney disease stage 2 (disorder)");
/// Chronic low back pain.
pub const LOW_BACK_PAIN: Code = sct("278860009", "Chronic low back pain (finding)");
/// Chronic neck pain.
pub const NECK_PAIN: Code = sct("1121000119107", "Chronic neck pain (finding)");
/// Osteoarthritis of knee.
pub const OA_KNEE: Code = sct("239873007", "Osteoarthritis of knee");
/// Chronic sinusitis.
pub const CHRONIC_SINUSITIS: Code = sct("40055000", "Chronic sinusitis (disorder)");
/// Osteoporosis.
pub const OSTEOPOROSIS: Code = sct("64859006", "Osteoporosis (disorder)");
/// Obesity (BMI 30+).
pub const OBESITY: Code = sct("162864005", "Body mass index 30+ - obesity (finding)");
/// Severe obesity (BMI 40+).
pub const SEVERE_OBESITY: Code = sct(
    "408512008",
    "Body mass index 40+ - severely obese (finding)",
);
/// Viral sinusitis.
pub const VIRAL_SINUSITIS: Code = sct("444814009", "Viral sinusitis (disorder)");
/// Acute viral pharyngitis.
pub const PHARYNGITIS: Code = sct("195662009", "Acute viral pharyngitis (disorder)");
/// Acute bronchitis.
pub const BRONCHITIS: Code = sct("10509002", "Acute bronchitis (disorder)");
/// Otitis media.
pub const OTITIS_MEDIA: Code = sct("65363002", "Otitis media");
/// Streptococcal sore throat.
pub const STREP_THROAT: Code = sct("43878008", "Streptococcal sore throat (disorder)");
/// Cystitis.
pub const CYSTITIS: Code = sct("38822007", "Cystitis");
/// Fever.
pub const FEVER: Code = sct("386661006", "Fever (finding)");
/// Cough.
pub const COUGH: Code = sct("49727002", "Cough (finding)");
/// Sore throat symptom.
pub const SORE_THROAT: Code = sct("267102003", "Sore throat symptom (finding)");
/// Loss of taste.
pub const LOSS_OF_TASTE: Code = sct("36955009", "Loss of taste (finding)");
/// Fatigue.
pub const FATIGUE: Code = sct("84229001", "Fatigue (finding)");
/// Headache.
pub const HEADACHE: Code = sct("25064002", "Headache (finding)");
/// Suspected COVID-19.
pub const SUSPECTED_COVID: Code = sct("840544004", "Suspected COVID-19");
/// COVID-19.
pub const COVID: Code = sct("840539006", "COVID-19");
/// Pneumonia.
pub const PNEUMONIA: Code = sct("233604007", "Pneumonia (disorder)");
/// Hypoxemia.
pub const HYPOXEMIA: Code = sct("389087006", "Hypoxemia (disorder)");
/// Respiratory distress.
pub const RESPIRATORY_DISTRESS: Code = sct("271825005", "Respiratory distress (finding)");
/// Normal pregnancy.
pub const PREGNANCY: Code = sct("72892002", "Normal pregnancy");
/// Miscarriage in first trimester.
pub const MISCARRIAGE: Code = sct("19169002", "Miscarriage in first trimester");
/// Sprain of ankle.
pub const ANKLE_SPRAIN: Code = sct("44465007", "Sprain of ankle");
/// Fracture of forearm.
pub const FOREARM_FRACTURE: Code = sct("65966004", "Fracture of forearm");
/// Laceration of forearm.
pub const FOREARM_LACERATION: Code = sct("283371005", "Laceration of forearm");
/// Concussion with no loss of consciousness.
pub const CONCUSSION: Code = sct("62106007", "Concussion with no loss of consciousness");
/// Fracture of ankle.
pub const ANKLE_FRACTURE: Code = sct("16114001", "Fracture of ankle");
/// Whiplash injury to neck.
pub const WHIPLASH: Code = sct("39848009", "Whiplash injury to neck");

// ---------------------------------------------------------------- procedures

/// Medication reconciliation.
pub const PROC_MED_RECONCILIATION: Code = sct("430193006", "Medication Reconciliation (procedure)");
/// Depression screening.
pub const PROC_DEPRESSION_SCREENING: Code = sct("171207006", "Depression screening");
/// Colonoscopy.
pub const PROC_COLONOSCOPY: Code = sct("73761001", "Colonoscopy");
/// Mammography.
pub const PROC_MAMMOGRAPHY: Code = sct("71651007", "Mammography (procedure)");
/// Spirometry.
pub const PROC_SPIROMETRY: Code = sct("127783003", "Spirometry (procedure)");
/// Bone density scan.
pub const PROC_BONE_DENSITY: Code = sct("312681000", "Bone density scan (procedure)");
/// Electrocardiographic procedure.
pub const PROC_ECG: Code = sct("29303009", "Electrocardiographic procedure");
/// Throat culture.
pub const PROC_THROAT_CULTURE: Code = sct("117015009", "Throat culture (procedure)");
/// Urine culture.
pub const PROC_URINE_CULTURE: Code = sct("117010004", "Urine culture");
/// Measurement of respiratory function.
pub const PROC_RESPIRATORY_FUNCTION: Code = sct(
    "23426006",
    "Measurement of respiratory function (procedure)",
);
/// Oxygen administration by mask.
pub const PROC_OXYGEN: Code = sct("371908008", "Oxygen administration by mask (procedure)");
/// Placing subject in prone position.
pub const PROC_PRONE: Code = sct("431182000", "Placing subject in prone position (procedure)");
/// Plain chest X-ray.
pub const PROC_CHEST_XRAY: Code = sct("399208008", "Plain chest X-ray (procedure)");
/// Bone immobilization.
pub const PROC_IMMOBILIZATION: Code = sct("274474001", "Bone immobilization");
/// Suture open wound.
pub const PROC_SUTURE: Code = sct("288086009", "Suture open wound");
/// Ankle X-ray.
pub const PROC_ANKLE_XRAY: Code = sct("19490002", "Ankle X-ray");
/// Standard pregnancy test.
pub const PROC_PREGNANCY_TEST: Code = sct("252160004", "Standard pregnancy test");
/// Ultrasound scan for fetal viability.
pub const PROC_FETAL_ULTRASOUND: Code = sct("169230002", "Ultrasound scan for fetal viability");
/// Blood typing, RH typing.
pub const PROC_BLOOD_TYPING: Code = sct("44608003", "Blood typing, RH typing");
/// Hepatitis B surface antigen measurement.
pub const PROC_HEP_B_TEST: Code = sct("47758006", "Hepatitis B Surface Antigen Measurement");
/// HIV antigen test.
pub const PROC_HIV_TEST: Code = sct("31676001", "Human immunodeficiency virus antigen test");
/// Syphilis infection test.
pub const PROC_SYPHILIS_TEST: Code = sct("269828009", "Syphilis infection test");
/// Rubella screening.
pub const PROC_RUBELLA: Code = sct("169690007", "Rubella screening");
/// Evaluation of uterine fundal height.
pub const PROC_FUNDAL_HEIGHT: Code = sct("274804006", "Evaluation of uterine fundal height");
/// Auscultation of the fetal heart.
pub const PROC_FETAL_HEART: Code = sct("225158009", "Auscultation of the fetal heart");
/// Fetal anatomy study.
pub const PROC_FETAL_ANATOMY: Code = sct("271442007", "Fetal anatomy study");
/// Alpha-fetoprotein test.
pub const PROC_AFP: Code = sct("275833003", "Alpha-fetoprotein test");
/// Vaccination for diphtheria, pertussis, and tetanus.
pub const PROC_DTP_VACCINATION: Code = sct(
    "399014008",
    "Vaccination for diphtheria, pertussis, and tetanus",
);
/// Childbirth.
pub const PROC_CHILDBIRTH: Code = sct("66348005", "Childbirth");
/// Cesarean section.
pub const PROC_CESAREAN: Code = sct("11466000", "Cesarean section");
/// Epidural anesthesia.
pub const PROC_EPIDURAL: Code = sct("18946005", "Epidural anesthesia");

// ---------------------------------------------------------------- medications (RxNorm)

/// lisinopril 10 MG Oral Tablet.
pub const MED_LISINOPRIL: Code = rx("314076", "lisinopril 10 MG Oral Tablet");
/// Hydrochlorothiazide 25 MG Oral Tablet.
pub const MED_HCTZ: Code = rx("310798", "Hydrochlorothiazide 25 MG Oral Tablet");
/// amLODIPine 2.5 MG Oral Tablet.
pub const MED_AMLODIPINE: Code = rx("308136", "amLODIPine 2.5 MG Oral Tablet");
/// Simvastatin 10 MG Oral Tablet.
pub const MED_SIMVASTATIN_10: Code = rx("314231", "Simvastatin 10 MG Oral Tablet");
/// Simvastatin 20 MG Oral Tablet.
pub const MED_SIMVASTATIN_20: Code = rx("312961", "Simvastatin 20 MG Oral Tablet");
/// Metformin 500 MG extended release.
pub const MED_METFORMIN: Code = rx(
    "860975",
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
);
/// Humulin 70/30.
pub const MED_INSULIN: Code = rx(
    "106892",
    "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable Suspension [Humulin]",
);
/// Fluticasone inhaler.
pub const MED_FLUTICASONE: Code = rx(
    "895994",
    "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
);
/// Albuterol inhaler.
pub const MED_ALBUTEROL: Code = rx(
    "2123111",
    "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
);
/// Fluticasone/salmeterol dry powder inhaler.
pub const MED_FLUTICASONE_SALMETEROL: Code = rx(
    "896209",
    "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
);
/// Clopidogrel 75 MG Oral Tablet.
pub const MED_CLOPIDOGREL: Code = rx("309362", "Clopidogrel 75 MG Oral Tablet");
/// Nitroglycerin spray.
pub const MED_NITROGLYCERIN: Code = rx("705129", "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray");
/// Warfarin Sodium 5 MG Oral Tablet.
pub const MED_WARFARIN: Code = rx("855332", "Warfarin Sodium 5 MG Oral Tablet");
/// Digoxin 0.125 MG Oral Tablet.
pub const MED_DIGOXIN: Code = rx("197604", "Digoxin 0.125 MG Oral Tablet");
/// Naproxen sodium 220 MG Oral Tablet.
pub const MED_NAPROXEN: Code = rx("849574", "Naproxen sodium 220 MG Oral Tablet");
/// Acetaminophen/hydrocodone.
pub const MED_HYDROCODONE: Code = rx(
    "856987",
    "Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG Oral Tablet",
);
/// Acetaminophen 325 MG Oral Tablet.
pub const MED_ACETAMINOPHEN_325: Code = rx("313782", "Acetaminophen 325 MG Oral Tablet");
/// Acetaminophen 160 MG Chewable Tablet.
pub const MED_ACETAMINOPHEN_160: Code = rx("313820", "Acetaminophen 160 MG Chewable Tablet");
/// Acetaminophen 500 MG Oral Tablet.
pub const MED_ACETAMINOPHEN_500: Code = rx("198440", "Acetaminophen 500 MG Oral Tablet");
/// Amoxicillin/clavulanate.
pub const MED_AMOX_CLAV: Code = rx(
    "562251",
    "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
);
/// Amoxicillin 250 MG Oral Capsule.
pub const MED_AMOXICILLIN: Code = rx("308182", "Amoxicillin 250 MG Oral Capsule");
/// Penicillin V Potassium 250 MG Oral Tablet.
pub const MED_PENICILLIN: Code = rx("834061", "Penicillin V Potassium 250 MG Oral Tablet");
/// Cough syrup (acetaminophen/dextromethorphan/doxylamine).
pub const MED_COUGH_SYRUP: Code = rx(
    "1043400",
    "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML Oral Solution",
);
/// Nitrofurantoin oral suspension.
pub const MED_NITROFURANTOIN: Code = rx("311989", "Nitrofurantoin 5 MG/ML Oral Suspension");
/// Phenazopyridine hydrochloride 100 MG Oral Tablet.
pub const MED_PHENAZOPYRIDINE: Code = rx(
    "1094107",
    "Phenazopyridine hydrochloride 100 MG Oral Tablet",
);
/// Ibuprofen 200 MG Oral Tablet.
pub const MED_IBUPROFEN_200: Code = rx("310965", "Ibuprofen 200 MG Oral Tablet");
/// Ibuprofen 100 MG Oral Tablet.
pub const MED_IBUPROFEN_100: Code = rx("198405", "Ibuprofen 100 MG Oral Tablet");
/// Enoxaparin 40 mg prefilled syringe.
pub const MED_ENOXAPARIN: Code = rx(
    "854235",
    "0.4 ML Enoxaparin sodium 100 MG/ML Prefilled Syringe",
);
/// Albuterol inhalation solution.
pub const MED_ALBUTEROL_NEB: Code = rx("245314", "Albuterol 5 MG/ML Inhalation Solution");

// ---------------------------------------------------------------- vaccines (CVX)

/// Influenza, seasonal, injectable, preservative free.
pub const VAX_FLU: Code = cvx("140", "Influenza, seasonal, injectable, preservative free");
/// Td (adult) preservative free.
pub const VAX_TD: Code = cvx("113", "Td (adult) preservative free");
/// Pneumococcal conjugate PCV 13.
pub const VAX_PCV13: Code = cvx("133", "Pneumococcal conjugate PCV 13");
/// Pneumococcal polysaccharide vaccine, 23 valent.
pub const VAX_PPSV23: Code = cvx("33", "pneumococcal polysaccharide vaccine, 23 valent");
/// DTaP.
pub const VAX_DTAP: Code = cvx("20", "DTaP");
/// IPV.
pub const VAX_IPV: Code = cvx("10", "IPV");
/// Zoster.
pub const VAX_ZOSTER: Code = cvx("121", "zoster");
/// Hib (PRP-OMP).
pub const VAX_HIB: Code = cvx("49", "Hib (PRP-OMP)");
/// Meningococcal MCV4P.
pub const VAX_MCV4: Code = cvx("114", "meningococcal MCV4P");
/// Hep B, adolescent or pediatric.
pub const VAX_HEP_B: Code = cvx("08", "Hep B, adolescent or pediatric");
/// HPV, quadrivalent.
pub const VAX_HPV: Code = cvx("62", "HPV, quadrivalent");
/// Hep A, ped/adol, 2 dose.
pub const VAX_HEP_A: Code = cvx("83", "Hep A, ped/adol, 2 dose");
/// Varicella.
pub const VAX_VARICELLA: Code = cvx("21", "varicella");
/// MMR.
pub const VAX_MMR: Code = cvx("03", "MMR");
/// Rotavirus, monovalent.
pub const VAX_ROTAVIRUS: Code = cvx("119", "rotavirus, monovalent");
/// Tdap.
pub const VAX_TDAP: Code = cvx("115", "Tdap");

// ---------------------------------------------------------------- observations (LOINC)

/// Body height.
pub const BODY_HEIGHT: Measure = m("8302-2", "Body Height", "cm", 1);
/// Body weight.
pub const BODY_WEIGHT: Measure = m("29463-7", "Body Weight", "kg", 1);
/// Body mass index.
pub const BMI: Measure = m("39156-5", "Body Mass Index", "kg/m2", 1);
/// BMI percentile per age and sex (2 to 20 years).
pub const BMI_PERCENTILE: Measure = m(
    "59576-9",
    "Body mass index (BMI) [Percentile] Per age and gender",
    "%",
    1,
);
/// Weight-for-length percentile (under 2 years).
pub const WEIGHT_FOR_LENGTH: Measure = m("77606-2", "Weight-for-length Per age and sex", "%", 1);
/// Head occipital-frontal circumference.
pub const HEAD_CIRCUMFERENCE: Measure =
    m("9843-4", "Head Occipital-frontal circumference", "cm", 1);
/// Blood pressure panel (components below).
pub const BLOOD_PRESSURE: Code =
    loinc("85354-9", "Blood pressure panel with all children optional");
/// Systolic blood pressure.
pub const SYSTOLIC: Measure = m("8480-6", "Systolic blood pressure", "mm[Hg]", 0);
/// Diastolic blood pressure.
pub const DIASTOLIC: Measure = m("8462-4", "Diastolic blood pressure", "mm[Hg]", 0);
/// Heart rate.
pub const HEART_RATE: Measure = m("8867-4", "Heart rate", "/min", 0);
/// Respiratory rate.
pub const RESPIRATORY_RATE: Measure = m("9279-1", "Respiratory rate", "/min", 0);
/// Body temperature.
pub const BODY_TEMPERATURE: Measure = m("8310-5", "Body temperature", "Cel", 1);
/// Oxygen saturation.
pub const OXYGEN_SATURATION: Measure = m("2708-6", "Oxygen saturation in Arterial blood", "%", 0);
/// Pain severity 0-10.
pub const PAIN_SEVERITY: Measure = m(
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
    "{score}",
    0,
);
/// PHQ-2 total score.
pub const PHQ2_SCORE: Measure = m(
    "55758-7",
    "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]",
    "{score}",
    0,
);
/// Tobacco smoking status.
pub const TOBACCO_STATUS: Code = loinc("72166-2", "Tobacco smoking status");
/// Never smoker.
pub const NEVER_SMOKER: Code = sct("266919005", "Never smoker");
/// Ex-smoker.
pub const EX_SMOKER: Code = sct("8517006", "Ex-smoker");
/// Smokes tobacco daily.
pub const DAILY_SMOKER: Code = sct("449868002", "Smokes tobacco daily");

/// Basic metabolic panel.
pub const PANEL_BMP: Code = loinc("51990-0", "Basic metabolic panel - Blood");
/// Glucose (blood).
pub const GLUCOSE: Measure = m("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 0);
/// Urea nitrogen (blood).
pub const UREA_NITROGEN: Measure = m("6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", 0);
/// Creatinine (blood).
pub const CREATININE: Measure = m("38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", 2);
/// Calcium (blood).
pub const CALCIUM: Measure = m("49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", 1);
/// Sodium (blood).
pub const SODIUM: Measure = m("2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", 0);
/// Potassium (blood).
pub const POTASSIUM: Measure = m("6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", 1);
/// Chloride (blood).
pub const CHLORIDE: Measure = m("2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", 0);
/// Carbon dioxide (blood).
pub const CARBON_DIOXIDE: Measure = m(
    "20565-8",
    "Carbon dioxide, total [Moles/volume] in Blood",
    "mmol/L",
    0,
);

/// Comprehensive metabolic panel.
pub const PANEL_CMP: Code = loinc(
    "24323-8",
    "Comprehensive metabolic 2000 panel - Serum or Plasma",
);
/// Glucose (serum).
pub const GLUCOSE_S: Measure = m(
    "2345-7",
    "Glucose [Mass/volume] in Serum or Plasma",
    "mg/dL",
    0,
);
/// Urea nitrogen (serum).
pub const UREA_NITROGEN_S: Measure = m(
    "3094-0",
    "Urea nitrogen [Mass/volume] in Serum or Plasma",
    "mg/dL",
    0,
);
/// Creatinine (serum).
pub const CREATININE_S: Measure = m(
    "2160-0",
    "Creatinine [Mass/volume] in Serum or Plasma",
    "mg/dL",
    2,
);
/// Calcium (serum).
pub const CALCIUM_S: Measure = m(
    "17861-6",
    "Calcium [Mass/volume] in Serum or Plasma",
    "mg/dL",
    1,
);
/// Sodium (serum).
pub const SODIUM_S: Measure = m(
    "2951-2",
    "Sodium [Moles/volume] in Serum or Plasma",
    "mmol/L",
    0,
);
/// Potassium (serum).
pub const POTASSIUM_S: Measure = m(
    "2823-3",
    "Potassium [Moles/volume] in Serum or Plasma",
    "mmol/L",
    1,
);
/// Chloride (serum).
pub const CHLORIDE_S: Measure = m(
    "2075-0",
    "Chloride [Moles/volume] in Serum or Plasma",
    "mmol/L",
    0,
);
/// Carbon dioxide (serum).
pub const CARBON_DIOXIDE_S: Measure = m(
    "2028-9",
    "Carbon dioxide, total [Moles/volume] in Serum or Plasma",
    "mmol/L",
    0,
);
/// eGFR.
pub const EGFR: Measure = m(
    "33914-3",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)",
    "mL/min/{1.73_m2}",
    0,
);
/// Total protein.
pub const PROTEIN: Measure = m(
    "2885-2",
    "Protein [Mass/volume] in Serum or Plasma",
    "g/dL",
    1,
);
/// Albumin.
pub const ALBUMIN: Measure = m(
    "1751-7",
    "Albumin [Mass/volume] in Serum or Plasma",
    "g/dL",
    1,
);
/// Globulin.
pub const GLOBULIN: Measure = m(
    "10834-0",
    "Globulin [Mass/volume] in Serum by calculation",
    "g/dL",
    1,
);
/// Total bilirubin.
pub const BILIRUBIN: Measure = m(
    "1975-2",
    "Bilirubin.total [Mass/volume] in Serum or Plasma",
    "mg/dL",
    1,
);
/// Alkaline phosphatase.
pub const ALP: Measure = m(
    "6768-6",
    "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
    "U/L",
    0,
);
/// ALT.
pub const ALT: Measure = m(
    "1742-6",
    "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
    "U/L",
    0,
);
/// AST.
pub const AST: Measure = m(
    "1920-8",
    "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
    "U/L",
    0,
);

/// Complete blood count panel.
pub const PANEL_CBC: Code = loinc(
    "58410-2",
    "Complete blood count (hemogram) panel - Blood by Automated count",
);
/// Leukocytes.
pub const WBC: Measure = m(
    "6690-2",
    "Leukocytes [#/volume] in Blood by Automated count",
    "10*3/uL",
    1,
);
/// Erythrocytes.
pub const RBC: Measure = m(
    "789-8",
    "Erythrocytes [#/volume] in Blood by Automated count",
    "10*6/uL",
    2,
);
/// Hemoglobin.
pub const HEMOGLOBIN: Measure = m("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 1);
/// Hematocrit (automated count).
pub const HEMATOCRIT: Measure = m(
    "4544-3",
    "Hematocrit [Volume Fraction] of Blood by Automated count",
    "%",
    1,
);
/// MCV.
pub const MCV: Measure = m("787-2", "MCV [Entitic volume] by Automated count", "fL", 1);
/// MCH.
pub const MCH: Measure = m("785-6", "MCH [Entitic mass] by Automated count", "pg", 1);
/// MCHC.
pub const MCHC: Measure = m("786-4", "MCHC [Mass/volume] by Automated count", "g/dL", 1);
/// RDW.
pub const RDW: Measure = m(
    "788-0",
    "Erythrocyte distribution width [Ratio] by Automated count",
    "%",
    1,
);
/// Platelets.
pub const PLATELETS: Measure = m(
    "777-3",
    "Platelets [#/volume] in Blood by Automated count",
    "10*3/uL",
    0,
);
/// Automated differential panel.
pub const PANEL_DIFFERENTIAL: Code = loinc("57023-4", "Auto Differential panel - Blood");
/// Neutrophils per 100 leukocytes.
pub const NEUTROPHILS_PCT: Measure = m(
    "770-8",
    "Neutrophils/100 leukocytes in Blood by Automated count",
    "%",
    1,
);
/// Lymphocytes per 100 leukocytes.
pub const LYMPHOCYTES_PCT: Measure = m(
    "736-9",
    "Lymphocytes/100 leukocytes in Blood by Automated count",
    "%",
    1,
);
/// Monocytes per 100 leukocytes.
pub const MONOCYTES_PCT: Measure = m(
    "5905-5",
    "Monocytes/100 leukocytes in Blood by Automated count",
    "%",
    1,
);
/// Eosinophils per 100 leukocytes.
pub const EOSINOPHILS_PCT: Measure = m(
    "713-8",
    "Eosinophils/100 leukocytes in Blood by Automated count",
    "%",
    1,
);
/// Basophils per 100 leukocytes.
pub const BASOPHILS_PCT: Measure = m(
    "706-2",
    "Basophils/100 leukocytes in Blood by Automated count",
    "%",
    1,
);
/// Neutrophils count.
pub const NEUTROPHILS: Measure = m(
    "751-8",
    "Neutrophils [#/volume] in Blood by Automated count",
    "10*3/uL",
    2,
);
/// Lymphocytes count.
pub const LYMPHOCYTES: Measure = m(
    "731-0",
    "Lymphocytes [#/volume] in Blood by Automated count",
    "10*3/uL",
    2,
);
/// Monocytes count.
pub const MONOCYTES: Measure = m(
    "742-7",
    "Monocytes [#/volume] in Blood by Automated count",
    "10*3/uL",
    2,
);
/// Eosinophils count.
pub const EOSINOPHILS: Measure = m(
    "711-2",
    "Eosinophils [#/volume] in Blood by Automated count",
    "10*3/uL",
    2,
);
/// Basophils count.
pub const BASOPHILS: Measure = m(
    "704-7",
    "Basophils [#/volume] in Blood by Automated count",
    "10*3/uL",
    2,
);
/// Hemoglobin and hematocrit panel.
pub const PANEL_HH: Code = loinc("24360-0", "Hemoglobin and Hematocrit panel - Blood");
/// Hematocrit.
pub const HEMATOCRIT_B: Measure = m("20570-8", "Hematocrit [Volume Fraction] of Blood", "%", 1);

/// Lipid panel.
pub const PANEL_LIPID: Code = loinc("57698-3", "Lipid panel with direct LDL - Serum or Plasma");
/// Total cholesterol.
pub const CHOLESTEROL: Measure = m(
    "2093-3",
    "Cholesterol [Mass/volume] in Serum or Plasma",
    "mg/dL",
    0,
);
/// Triglycerides.
pub const TRIGLYCERIDES: Measure = m(
    "2571-8",
    "Triglyceride [Mass/volume] in Serum or Plasma",
    "mg/dL",
    0,
);
/// LDL cholesterol.
pub const LDL: Measure = m(
    "18262-6",
    "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
    "mg/dL",
    0,
);
/// HDL cholesterol.
pub const HDL: Measure = m(
    "2085-9",
    "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
    "mg/dL",
    0,
);

/// Urinalysis dipstick panel.
pub const PANEL_URINALYSIS: Code = loinc("24357-6", "Urinalysis macro (dipstick) panel - Urine");
/// Color of urine.
pub const URINE_COLOR: Code = loinc("5778-6", "Color of Urine");
/// Clarity of urine.
pub const URINE_CLARITY: Code = loinc("32167-9", "Clarity of Urine");
/// Glucose in urine.
pub const URINE_GLUCOSE: Measure = m(
    "5792-7",
    "Glucose [Mass/volume] in Urine by Test strip",
    "mg/dL",
    0,
);
/// Bilirubin in urine.
pub const URINE_BILIRUBIN: Measure = m(
    "20505-4",
    "Bilirubin.total [Mass/volume] in Urine by Test strip",
    "mg/dL",
    1,
);
/// Ketones in urine.
pub const URINE_KETONES: Measure = m(
    "5797-6",
    "Ketones [Mass/volume] in Urine by Test strip",
    "mg/dL",
    0,
);
/// Specific gravity of urine.
pub const URINE_SPECIFIC_GRAVITY: Measure = m(
    "5811-5",
    "Specific gravity of Urine by Test strip",
    "{nominal}",
    3,
);
/// pH of urine.
pub const URINE_PH: Measure = m("5803-2", "pH of Urine by Test strip", "[pH]", 1);
/// Protein in urine.
pub const URINE_PROTEIN: Measure = m(
    "5804-0",
    "Protein [Mass/volume] in Urine by Test strip",
    "mg/dL",
    0,
);
/// Nitrite in urine.
pub const URINE_NITRITE: Code = loinc("5802-4", "Nitrite [Presence] in Urine by Test strip");
/// Leukocyte esterase in urine.
pub const URINE_LEUKOCYTE_ESTERASE: Code = loinc(
    "5799-2",
    "Leukocyte esterase [Presence] in Urine by Test strip",
);
/// Hemoglobin in urine.
pub const URINE_HEMOGLOBIN: Code = loinc("5794-3", "Hemoglobin [Presence] in Urine by Test strip");
/// Yellow color.
pub const COLOR_YELLOW: Code = sct("371244009", "Yellow color (qualifier value)");
/// Translucent.
pub const CLARITY_TRANSLUCENT: Code = sct("300828005", "Translucent (qualifier value)");
/// Urine nitrite negative.
pub const NITRITE_NEGATIVE: Code = sct("314138001", "Urine nitrite negative (finding)");
/// Urine leukocyte test negative.
pub const LEUKOCYTES_NEGATIVE: Code = sct("394717006", "Urine leukocyte test negative (finding)");
/// Urine blood test negative.
pub const BLOOD_NEGATIVE: Code = sct("167297006", "Urine blood test = negative (finding)");
/// Hemoglobin A1c.
pub const HBA1C: Measure = m("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 1);
/// Microalbumin/creatinine ratio.
pub const MICROALBUMIN_RATIO: Measure = m(
    "14959-1",
    "Microalbumin/Creatinine [Mass Ratio] in Urine",
    "mg/g",
    1,
);
/// PT panel.
pub const PANEL_PT: Code = loinc(
    "34528-0",
    "PT panel - Platelet poor plasma by Coagulation assay",
);
/// Prothrombin time.
pub const PT: Measure = m("5902-2", "Prothrombin time (PT)", "s", 1);
/// INR.
pub const INR: Measure = m(
    "6301-6",
    "INR in Platelet poor plasma by Coagulation assay",
    "{INR}",
    1,
);
/// Iron panel (ferritin).
pub const PANEL_IRON: Code = loinc("75689-0", "Iron panel - Serum or Plasma");
/// Ferritin.
pub const FERRITIN: Measure = m(
    "2276-4",
    "Ferritin [Mass/volume] in Serum or Plasma",
    "ug/L",
    0,
);
/// Troponin panel.
pub const PANEL_TROPONIN: Code = loinc(
    "89577-1",
    "Troponin I.cardiac panel - Serum or Plasma by High sensitivity method",
);
/// High-sensitivity troponin I.
pub const TROPONIN: Measure = m(
    "89579-7",
    "Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method",
    "pg/mL",
    1,
);
/// D-dimer.
pub const D_DIMER: Measure = m(
    "48065-7",
    "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma",
    "ug/mL",
    2,
);
/// C-reactive protein.
pub const CRP: Measure = m(
    "1988-5",
    "C reactive protein [Mass/volume] in Serum or Plasma",
    "mg/L",
    1,
);
/// Lactate dehydrogenase.
pub const LDH: Measure = m(
    "14804-9",
    "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma by Lactate to pyruvate reaction",
    "U/L",
    0,
);
/// SARS-CoV-2 RNA panel.
pub const PANEL_SARS_COV_2: Code = loinc("94531-1", "SARS-CoV-2 RNA Pnl Resp NAA+probe");
/// SARS-CoV-2 RNA presence.
pub const SARS_COV_2_RNA: Code = loinc(
    "94500-6",
    "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory specimen by NAA with probe detection",
);
/// Result detected.
pub const DETECTED: Code = sct("260373001", "Detected (qualifier value)");
/// Result not detected.
pub const NOT_DETECTED: Code = sct("260415000", "Not detected (qualifier value)");
