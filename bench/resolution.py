#!/usr/bin/env python3
"""resolution.py - the evidence behind the default pixel budget.

Renders pages with `ernie-doc render --max-pixels` (exactly what the model
is shown at each budget) and reads them with Tesseract, a classical OCR
engine that needs more pixels than a vision-language model: the share of
words it gets wrong, against the page's true text, per budget. Pages: A4
pages of Helvetica text generated here at 7 to 12 points, and, when
../shared/corpus is beside the checkout, real documents with their text.

usage: bench/resolution.py [ERNIE_DOC] (needs tesseract on PATH; not part
of `make bench`, whose machine need not have it)
"""
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

BUDGETS = [736, 988, 1260, 1472, 2048, 3072, 6177]  # image tokens
WORDS = ("The quick brown fox jumps over the lazy dog. Invoice 2024-0193 "
         "dated 12 March 2024, amount due EUR 1,284.50 payable within 30 "
         "days. Contracts, reports and scanned letters all end up as rows "
         "that a single SQL query can search. Section 4.2 lists the "
         "penalties; see Table 7 for rates of 3.75% and 12.5%. Reference "
         "number AX-7741-QZ.").split()


def a4_text_pdf(path, size):
    """An A4 page of random words at size points; returns its text."""
    rnd = random.Random(int(size * 10))
    lines, ops, y = [], [], 800.0
    while y > 50:
        line = " ".join(rnd.choice(WORDS) for _ in range(40))
        while len(line) * size * 0.5 > 460:
            line = line.rsplit(" ", 1)[0]
        lines.append(line)
        esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append("BT /F1 %g Tf 60 %.2f Td (%s) Tj ET" % (size, y, esc))
        y -= size * 1.25
    content = "\n".join(ops).encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.276 841.89] "
            b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
            b"/Encoding /WinAnsiEncoding >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content +
            b"\nendstream"]
    out, offs = b"%PDF-1.4\n", []
    for i, o in enumerate(objs):
        offs.append(len(out))
        out += b"%d 0 obj\n" % (i + 1) + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offs:
        out += b"%010d 00000 n \n" % o
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objs) + 1, xref))
    with open(path, "wb") as f:
        f.write(out)
    return "\n".join(lines)


def wer(ref, hyp):
    """Word error rate: edits over the reference's words."""
    r, h = re.findall(r"\S+", ref.lower()), re.findall(r"\S+", hyp.lower())
    prev = list(range(len(h) + 1))
    for i, a in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, b in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a != b))
        prev = cur
    return prev[-1] / max(1, len(r))


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "./ernie-doc"
    if not shutil.which("tesseract"):
        sys.exit("resolution.py: needs tesseract (apt-get install "
                 "tesseract-ocr)")
    tmp = tempfile.mkdtemp(prefix="ernie-doc-res.")
    docs = []
    for pt in (7, 8, 9, 10, 12):
        p = os.path.join(tmp, "a4_%dpt.pdf" % pt)
        docs.append(("A4, %d pt Helvetica" % pt, p, 1, a4_text_pdf(p, pt)))
    corpus = os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                          "corpus")
    latex = os.path.join(corpus, "pdflatex-4-pages.pdf")
    if os.path.exists(latex):
        for pg in (1, 2, 3):
            txt = subprocess.run(["pdftotext", "-f", str(pg), "-l", str(pg),
                                  latex, "-"], capture_output=True,
                                 text=True).stdout
            docs.append(("LaTeX paper, page %d (10 pt)" % pg, latex, pg, txt))
    linn = os.path.join(corpus, "linn.pdf")
    if os.path.exists(linn):
        with open(os.path.join(corpus, "linn.txt")) as f:
            docs.append(("scanned letter page (linn.pdf)", linn, 1, f.read()))
    print("words wrong, by image tokens (--max-pixels = tokens x 784):")
    print("%-32s" % "page" + "".join("%8d" % b for b in BUDGETS))
    for name, path, pg, truth in docs:
        row = []
        for b in BUDGETS:
            out = os.path.join(tmp, "r%d" % b)
            subprocess.run([exe, "render", "-q", "--pages", str(pg),
                            "--max-pixels", str(b * 784), "-o", out, path],
                           check=True, stdout=subprocess.DEVNULL)
            png = os.path.join(out, "page-%04d.png" % pg)
            hyp = subprocess.run(["tesseract", png, "-", "--psm", "3"],
                                 capture_output=True, text=True).stdout
            row.append(wer(truth, hyp))
        print("%-32s" % name + "".join("%7.1f%%" % (100 * w) for w in row),
              flush=True)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
