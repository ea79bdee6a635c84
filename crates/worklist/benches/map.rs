//! The worker-side cost of one order: mapping an ORM^O01 through a preset into
//! worklist actions, and serialising the appointment and patient the way the store
//! keeps them.
//!
//! ```text
//! cargo bench -p medrelay-worklist --bench map -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use hl7v2::Message;
use medrelay_worklist::{MapContext, WorklistAction, map_message, presets};
use std::hint::black_box;

const ORM: &str = "MSH|^~\\&|HIS|HOSPITAL_A|MEDRELAY|CARDIOLOGY|20250315120000||ORM^O01^ORM_O01|C1|P|2.5|||AL|NE||8859/1\r\
PID|1||1000001^^^HIS^MR~500000001^^^SSA^SS||GARCIA^PEDRO^MARIA^JR^DR||19751022|M||2106-3^White^HL70005|C/ MAYOR 1^PISO 2^MADRID^MD^28001^ES^H||+34911234567^PRN^PH^^^^^^^^^pedro.garcia@example.org|+34917654321^WPN^PH||M||ACC1|||N\r\
PV1|1|O|CARDIO^101^A^HOSPITAL_A||||12345^LOPEZ^ANA^^^DR|67890^RUIZ^JUAN^^^DR||CAR||||1|||12345^LOPEZ^ANA^^^DR|OP|VN1^^^HIS^VN|||||||||||||||||||||||||20250315114500\r\
ORC|NW|PC1|FC1|GRP1|SC||1^^^20250315120000^^R||20250315120000|7777^CLERK^ANNA||12345^LOPEZ^ANA^^^DR|CARDIO^101|+34911112222|20250315120000||HOSPITAL_A\r\
OBR|1|PC1|FC1|ECG12^12-lead ECG^L|R|20250315120000|20250315120000||||||||ECG&Electrocardiogram|12345^LOPEZ^ANA^^^DR|+34911112222|||||||CARDIO|SC||1^^^20250315120000^^R|||||||||20250315120000||||||||ECG12^12-lead ECG^L\r\
NTE|1||Patient has a pacemaker; please note on the report.\r";

fn bench(c: &mut Criterion) {
    let mapping = presets::load("nextgen").expect("preset").mapping;
    let ctx = MapContext {
        integration: "cardiology-nextgen".into(),
        group: "cardiology".into(),
        org: "default".into(),
    };
    c.bench_function("ORM^O01 parse + map (nextgen)", |b| {
        b.iter(|| {
            let msg = Message::parse(black_box(ORM.as_bytes())).expect("parse");
            black_box(map_message(&msg, &mapping, &ctx).expect("map"))
        })
    });
    c.bench_function(
        "ORM^O01 parse + map + JSON of appointment and patient",
        |b| {
            b.iter(|| {
                let msg = Message::parse(black_box(ORM.as_bytes())).expect("parse");
                let actions = map_message(&msg, &mapping, &ctx).expect("map");
                let mut bytes = 0;
                for a in &actions {
                    if let WorklistAction::CreateAppointment {
                        patient,
                        appointment,
                    } = a
                    {
                        bytes += serde_json::to_string(patient).expect("json").len();
                        bytes += serde_json::to_string(appointment).expect("json").len();
                    }
                }
                black_box(bytes)
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
