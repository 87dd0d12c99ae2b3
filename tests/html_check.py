#!/usr/bin/env python3
"""html_check.py - checks on ernie-doc's HTML review and report, with
Python's html.parser and Pillow as independent references.

  html_check.py html FILE [--scripts N] [--hostile TEXT]
      well-formed (every element closed, in order; void elements alone),
      no external URL (only data: images and #fragments), exactly N
      <script> elements, and TEXT (if given) present as text only: in
      the page's words, never as markup
  html_check.py shot FILE.png [--color R,G,B --box X0,Y0,X1,Y1 --min-w W]
      a screenshot that is not blank, and (with --color) the pixels of
      that colour, the page image, inside the box where the layout puts
      it and at least W pixels wide
Exits 0 when every check holds, printing what it saw.
"""
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
        "meta", "source", "track", "wbr"}
URL_ATTRS = {"src", "href", "action", "poster", "srcset", "data"}


class Checker(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.text = [], [], []
        self.scripts, self.script_text = 0, []
        self.in_script = False

    def handle_starttag(self, tag, attrs):
        self.check_attrs(tag, attrs)
        if tag == "script":
            self.scripts += 1
            self.in_script = True
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.check_attrs(tag, attrs)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append("</%s> at %s closes %s" % (
                tag, self.getpos(), self.stack[-1] if self.stack else None))
            return
        self.stack.pop()
        if tag == "script":
            self.in_script = False

    def handle_data(self, data):
        (self.script_text if self.in_script else self.text).append(data)

    def check_attrs(self, tag, attrs):
        for k, v in attrs:
            v = (v or "").strip().lower()
            if k in URL_ATTRS and not (v.startswith("#") or
                                       v.startswith("data:image/png;base64,")
                                       or (v.endswith(".html") or
                                           ".html#" in v) and "/" not in v
                                       and ":" not in v):
                self.errors.append("<%s %s=%r>: not a local reference" %
                                   (tag, k, v[:60]))
            if k == "style" and "url(" in v:
                self.errors.append("<%s style> fetches %r" % (tag, v[:60]))
            if k.startswith("on"):
                self.errors.append("<%s %s>: an event handler" % (tag, k))


def check_html(path, scripts, hostile):
    with open(path, encoding="utf-8") as f:
        src = f.read()
    p = Checker()
    p.feed(src)
    p.close()
    errs = list(p.errors)
    if p.stack:
        errs.append("left open: %s" % p.stack[-3:])
    if not src.startswith("<!DOCTYPE html>"):
        errs.append("no doctype")
    for bad in ("http://", "https://", "//cdn", "@import"):
        # the only URLs are none: not even in text
        if bad in src.replace("http://www.w3.org", ""):
            if bad in ("http://", "https://") and hostile and bad in hostile:
                continue
            errs.append("%r in the file" % bad)
    if scripts is not None and p.scripts != scripts:
        errs.append("%d <script> elements, want %d" % (p.scripts, scripts))
    if hostile:
        text = "".join(p.text)
        if hostile not in text:
            errs.append("the hostile text is not shown as text")
        if any(hostile in s for s in p.script_text):
            errs.append("the hostile text ran as a script")
    print("%s: %d bytes, %d scripts, %s" % (
        path, len(src), p.scripts, "; ".join(errs) if errs else "ok"))
    return not errs


def check_shot(path, color, box, min_w):
    from PIL import Image, ImageStat
    im = Image.open(path).convert("RGB")
    st = ImageStat.Stat(im)
    ok = max(st.stddev) > 12 and len(im.getcolors(1 << 20) or []) > 30
    msg = "%s: %dx%d, stddev %.1f" % (path, im.width, im.height,
                                      max(st.stddev))
    if color:
        r0, g0, b0 = color
        px = im.load()
        xs, ys = [], []
        for y in range(0, im.height, 2):
            for x in range(0, im.width, 2):
                r, g, b = px[x, y]
                if abs(r - r0) + abs(g - g0) + abs(b - b0) < 60:
                    xs.append(x)
                    ys.append(y)
        if not xs:
            ok = False
            msg += ", no page image pixels"
        else:
            bb = (min(xs), min(ys), max(xs), max(ys))
            msg += ", page image at %s" % (bb,)
            inside = (bb[0] >= box[0] and bb[1] >= box[1] and
                      bb[2] <= box[2] and bb[3] <= box[3])
            wide = bb[2] - bb[0] >= min_w
            ok = ok and inside and wide
            if not inside:
                msg += " outside %s" % (box,)
            if not wide:
                msg += " narrower than %d" % min_w
    print(msg + ("" if ok else "  FAIL"))
    return ok


def main():
    a = sys.argv[1:]
    opt = {}
    args = []
    i = 1
    while i < len(a):
        if a[i].startswith("--"):
            opt[a[i][2:]] = a[i + 1]
            i += 2
        else:
            args.append(a[i])
            i += 1
    if a[0] == "html":
        ok = check_html(args[0], int(opt["scripts"]) if "scripts" in opt
                        else None, opt.get("hostile"))
    else:
        ok = check_shot(args[0],
                        tuple(int(v) for v in opt["color"].split(","))
                        if "color" in opt else None,
                        tuple(int(v) for v in opt.get("box", "0,0,0,0")
                              .split(",")),
                        int(opt.get("min-w", 0)))
    sys.exit(0 if ok else 1)


main()
