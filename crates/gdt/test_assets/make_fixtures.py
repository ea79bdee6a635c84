#!/usr/bin/env python3
"""Writes the GDT fixtures of this directory.

This is deliberately an implementation independent of the crate's writer (Python's own
cp437 / latin-1 codecs, lengths counted here), so the Rust tests check the parser and
the writer against bytes the crate did not produce. Run it from this directory; the
files are committed, the script only documents how they were made.
"""

def record(fields, encoding, length_digits):
    """fields: list of (id, text); 8100 gets the record length (all lines, CR LF incl.)."""
    lines = []
    for fid, text in fields:
        content = ("0" * length_digits if fid == "8100" else text).encode(encoding)
        lines.append([fid, content])

    def encode(fid, content):
        n = 3 + 4 + len(content) + 2
        assert n <= 999
        return b"%03d" % n + fid.encode("ascii") + content + b"\r\n"

    total = sum(len(encode(f, c)) for f, c in lines)  # 8100's width is fixed
    for line in lines:
        if line[0] == "8100":
            line[1] = (b"%0" + str(length_digits).encode() + b"d") % total
    out = b"".join(encode(f, c) for f, c in lines)
    assert len(out) == total
    return out


def v3_objects(objects):
    """GDT 3.0: wraps field lists into 8200 <name> ... 8201 <lines of the object>."""
    out = []
    for name, fields in objects:
        out.append(("8200", name))
        out.extend(fields)
        out.append(("8201", str(len(fields) + 2)))
    return out


PATIENT_21 = [
    ("3000", "12345"),
    ("3101", "Müller"),
    ("3102", "Jürgen"),
    ("3103", "24061965"),
]

request_21 = [
    ("8000", "6302"),
    ("8100", None),
    ("8315", "EKG_DEV"),
    ("8316", "PRAX_EDV"),
    ("9206", "2"),
    ("9218", "02.10"),
] + PATIENT_21 + [
    ("3104", "Dr."),
    ("3105", "A123456789"),
    ("3106", "50667 Köln"),
    ("3107", "Hauptstraße 5"),
    ("3110", "1"),
    ("3622", "178"),
    ("3623", "82"),
    ("8402", "EKG01"),
    ("8410", "RUHEEKG"),
]

body_30 = v3_objects([
    ("Obj_Kopfdaten", [
        ("8315", "EKG_DEV"),
        ("8316", "PRAX_PVS"),
        ("9206", "3"),
        ("9218", "03.00"),
    ]),
    ("Obj_Patient", PATIENT_21 + [
        ("3107", "Hauptstraße 5"),
        ("3110", "M"),
        ("3112", "50667"),
        ("3113", "Köln"),
        ("3619", "juergen.mueller@example.org"),
    ]),
    ("Obj_Anforderung", [
        ("6200", "15032025"),
        ("6201", "143000"),
        ("8310", "ANF-2025-0815"),
        ("8314", "1.2.276.0.7230010.3.1.2.2025031514300001"),
        ("8402", "EKG01"),
    ]),
    ("Obj_Basisdiagnostik", [
        ("3622", "178.00"),
        ("3623", "82.00"),
    ]),
])
request_30 = [("8000", "6302"), ("8100", None)] + body_30
request_30.append(("8202", str(len(request_30) + 1)))

result_21 = [
    ("8000", "6310"),
    ("8100", None),
    ("8315", "PRAX_EDV"),
    ("8316", "EKG_DEV"),
    ("9206", "2"),
    ("9218", "02.10"),
] + PATIENT_21 + [
    ("3110", "1"),
    ("8402", "EKG01"),
    ("6200", "15032025"),
    ("6201", "143005"),
    ("6220", "Sinusrhythmus, Herzfrequenz 72/min, Indifferenztyp."),
    ("6220", "PQ-, QRS- und QT-Zeit normal."),
    ("6220", "Keine Erregungsrückbildungsstörung."),
    ("6227", "Vorläufiger Befund, ärztliche Freigabe folgt."),
    ("6302", "EKG-2025-0001"),
    ("6303", "PDF"),
    ("6304", "Ruhe-EKG Befundbericht"),
    ("6305", "C:\\GDT\\Befunde\\EKG-2025-0001.pdf"),
    ("8410", "HF"),
    ("8411", "Herzfrequenz"),
    ("8420", "72"),
    ("8421", "/min"),
    ("8461", "60"),
    ("8462", "100"),
    ("8410", "PQ"),
    ("8411", "PQ-Zeit"),
    ("8420", "160"),
    ("8421", "ms"),
    ("8410", "QRS"),
    ("8411", "QRS-Dauer"),
    ("8420", "96"),
    ("8421", "ms"),
    ("8480", "normal"),
    ("8410", "QTC"),
    ("8411", "QTc-Zeit (Bazett)"),
    ("8420", "412"),
    ("8421", "ms"),
    ("8990", "Dr. Weiß"),
]

with open("request_6302_gdt21_cp437.gdt", "wb") as f:
    f.write(record(request_21, "cp437", 5))
with open("request_6302_gdt30_latin1.gdt", "wb") as f:
    f.write(record(request_30, "latin-1", 7))
with open("result_6310_gdt21_cp437.gdt", "wb") as f:
    f.write(record(result_21, "cp437", 5))
