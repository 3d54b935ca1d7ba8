#!/usr/bin/env python3
"""Checks Slicer CLI module descriptions (`<module> --xml`) against SlicerExecutionModel's rules.

The rules are written from SlicerExecutionModel's documentation (the Slicer wiki page
"Developers/SlicerExecutionModel" and the element documentation of the CTK/SEM schemas); they are
listed in modules/slicer/README.md, "Module description rules". No schema file is used.

usage: check_module_xml.py [--self-test] [--runner RUNNER COMMAND] MODULE...
  MODULE          a module executable: its --xml output is checked
  --runner R C    also require MODULE's --xml to equal `R C --xml` (the description embedded at
                  build time is not stale); pairs are given in the same order as the modules
  --self-test     first check that broken descriptions are rejected (the checker can fail)
"""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

EXECUTABLE_ORDER = ["category", "title", "description", "version", "documentation-url", "license",
                    "contributor", "acknowledgements"]
SCALARS = {"integer", "float", "double"}
VECTORS = {"integer-vector", "float-vector", "double-vector", "string-vector"}
ENUMERATIONS = {"string-enumeration", "integer-enumeration", "float-enumeration", "double-enumeration"}
FILES = {"image", "file", "directory", "geometry", "transform", "table"}
PARAMETER_TAGS = SCALARS | VECTORS | ENUMERATIONS | FILES | {"boolean", "string", "point", "region"}
# Children of a parameter in order; a tag may be absent but never out of this order.
PARAMETER_ORDER = ["name", "flag", "longflag", "index", "description", "label", "default", "channel",
                   "constraints", "element"]
ATTRIBUTES = {
    "image": {"type", "multiple", "reference", "fileExtensions", "hidden"},
    "geometry": {"type", "multiple", "reference", "fileExtensions", "hidden"},
    "file": {"multiple", "fileExtensions", "hidden"},
    "directory": {"multiple", "hidden"},
}
IMAGE_TYPES = {"scalar", "label", "tensor", "diffusion-weighted", "vector", "model", "any"}
IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
INTEGER = re.compile(r"^[-+]?\d+$")


def check(xml_text):
    """Returns a list of rule violations (empty: the description is valid)."""
    errors = []

    def err(where, message):
        errors.append(f"{where}: {message}")

    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as e:
        return [f"not well-formed XML: {e}"]
    if root.tag != "executable":
        return [f"root element is <{root.tag}>, not <executable>"]
    children = [c.tag for c in root]
    head = [t for t in children if t != "parameters"]
    if head != EXECUTABLE_ORDER:
        err("executable", f"expected {EXECUTABLE_ORDER} then <parameters>, got {head}")
    first_group = children.index("parameters") if "parameters" in children else len(children)
    if any(t != "parameters" for t in children[first_group:]):
        err("executable", "metadata after the first <parameters>")
    if "parameters" not in children:
        err("executable", "no <parameters> group")
    for tag in EXECUTABLE_ORDER:
        e = root.find(tag)
        if e is not None and not (e.text or "").strip() and tag in ("title", "description", "category", "version"):
            err("executable", f"<{tag}> is empty")
    if root.findtext("category") != "Sagitta":
        err("executable", f"category is {root.findtext('category')!r}, not 'Sagitta'")

    names, flags, indices = set(), set(), []
    for g, group in enumerate(root.findall("parameters")):
        where = f"parameters[{g}]"
        if set(group.attrib) - {"advanced"}:
            err(where, f"attributes {sorted(group.attrib)}: only 'advanced'")
        if group.get("advanced", "false") not in ("true", "false"):
            err(where, "advanced must be true or false")
        tags = [c.tag for c in group]
        if tags[:2] != ["label", "description"]:
            err(where, f"must start with <label> and <description>, got {tags[:2]}")
        params = list(group)[2:]
        if not params:
            err(where, "no parameter")
        for p in params:
            pw = f"{where}/{p.tag}[{p.findtext('name')}]"
            if p.tag not in PARAMETER_TAGS:
                err(pw, "unknown parameter element")
                continue
            allowed = ATTRIBUTES.get(p.tag, {"multiple", "hidden"})
            if set(p.attrib) - allowed:
                err(pw, f"attributes {sorted(set(p.attrib) - allowed)} not allowed")
            for a in ("multiple", "hidden"):
                if a in p.attrib and p.get(a) not in ("true", "false"):
                    err(pw, f"{a} must be true or false")
            if p.tag == "image" and p.get("type", "scalar") not in IMAGE_TYPES:
                err(pw, f"image type {p.get('type')!r}")
            kids = [c.tag for c in p]
            unknown = [k for k in kids if k not in PARAMETER_ORDER]
            if unknown:
                err(pw, f"unknown children {unknown}")
            positions = [PARAMETER_ORDER.index(k) for k in kids if k in PARAMETER_ORDER]
            if positions != sorted(positions):
                err(pw, f"children out of order: {kids} (order: {PARAMETER_ORDER})")
            for once in ("name", "flag", "longflag", "index", "description", "label", "default", "channel", "constraints"):
                if kids.count(once) > 1:
                    err(pw, f"<{once}> more than once")
            for required in ("name", "description", "label"):
                if required not in kids:
                    err(pw, f"no <{required}>")
            name = (p.findtext("name") or "").strip()
            if not IDENTIFIER.match(name):
                err(pw, f"name {name!r} is not an identifier")
            if name in names:
                err(pw, "name used twice")
            names.add(name)
            flag, longflag, index = p.findtext("flag"), p.findtext("longflag"), p.findtext("index")
            channel = p.findtext("channel")
            if flag is not None and (len(flag.strip().lstrip("-")) != 1 or not IDENTIFIER.match(flag.strip().lstrip("-"))):
                err(pw, f"flag {flag!r} must be one character")
            if longflag is not None and not IDENTIFIER.match(longflag.strip().lstrip("-")):
                err(pw, f"longflag {longflag!r}: letters, digits and underscores only")
            for f in (flag and "-" + flag.strip().lstrip("-"), longflag and "--" + longflag.strip().lstrip("-")):
                if f:
                    if f in flags:
                        err(pw, f"flag {f} used twice")
                    flags.add(f)
            if index is not None:
                if flag is not None or longflag is not None:
                    err(pw, "index and flag together")
                if not INTEGER.match(index.strip()) or int(index) < 0:
                    err(pw, f"index {index!r}")
                else:
                    indices.append(int(index))
            if channel is not None and channel not in ("input", "output"):
                err(pw, f"channel {channel!r}")
            if p.tag in FILES and channel is None:
                err(pw, "file, folder or image without <channel>")
            if flag is None and longflag is None and index is None:
                # A simple return parameter: an output reported through --returnparameterfile.
                if channel != "output":
                    err(pw, "no flag, longflag or index, and not an output (return) parameter")
                if p.tag in FILES:
                    err(pw, "a return parameter cannot be a file")
            default = p.findtext("default")
            if p.tag == "boolean" and default not in (None, "true", "false"):
                err(pw, f"boolean default {default!r}")
            if default is not None and p.tag in SCALARS | {"integer-vector", "float-vector", "double-vector"}:
                items = default.split(",") if p.tag in VECTORS else [default]
                pattern = INTEGER if p.tag.startswith("integer") else NUMBER
                if not all(pattern.match(i.strip()) for i in items):
                    err(pw, f"default {default!r} is not a {p.tag}")
            if p.tag in ENUMERATIONS:
                elements = [e.text for e in p.findall("element")]
                if not elements:
                    err(pw, "enumeration without <element>")
                if default is not None and default not in elements:
                    err(pw, f"default {default!r} not among {elements}")
            elif "element" in kids:
                err(pw, "<element> outside an enumeration")
            c = p.find("constraints")
            if c is not None:
                if p.tag not in SCALARS | (VECTORS - {"string-vector"}):
                    err(pw, "<constraints> on a non-numeric parameter")
                ctags = [x.tag for x in c]
                order = ["minimum", "maximum", "step"]
                if [t for t in ctags if t not in order] or [order.index(t) for t in ctags] != sorted(order.index(t) for t in ctags):
                    err(pw, f"constraints children {ctags}: minimum, maximum, step in that order")
                values = {x.tag: x.text for x in c}
                for k, v in values.items():
                    if not NUMBER.match((v or "").strip()):
                        err(pw, f"constraint {k} {v!r} is not a number")
                if all(NUMBER.match((values.get(k) or "x").strip()) for k in ("minimum", "maximum")):
                    lo, hi = float(values["minimum"]), float(values["maximum"])
                    if lo > hi:
                        err(pw, "minimum above maximum")
                    if default is not None and NUMBER.match(default.strip()) and not lo <= float(default) <= hi:
                        err(pw, f"default {default} outside [{lo}, {hi}]")
    if sorted(indices) != list(range(len(indices))):
        err("executable", f"indices {sorted(indices)} are not 0..n-1")
    return errors


def self_test():
    good = """<?xml version="1.0" encoding="utf-8"?>
<executable><category>Sagitta</category><title>T</title><description>D</description><version>1</version>
<documentation-url>u</documentation-url><license>l</license><contributor>c</contributor>
<acknowledgements>a</acknowledgements>
<parameters><label>L</label><description>D</description>
<image type="label"><name>input</name><index>0</index><description>d</description><label>l</label><channel>input</channel></image>
<integer><name>n</name><longflag>count</longflag><description>d</description><label>l</label><default>3</default>
<constraints><minimum>0</minimum><maximum>5</maximum><step>1</step></constraints></integer>
<float-vector><name>r</name><description>d</description><label>l</label><channel>output</channel></float-vector>
</parameters></executable>"""
    assert check(good) == [], check(good)
    broken = {
        "order of executable": good.replace("<title>T</title><description>D</description>", "<description>D</description><title>T</title>"),
        "hyphen in longflag": good.replace("<longflag>count</longflag>", "<longflag>max-count</longflag>"),
        "label after default": good.replace("<label>l</label><default>3</default>", "<default>3</default><label>l</label>"),
        "missing label": good.replace("<description>d</description><label>l</label><channel>input", "<description>d</description><channel>input"),
        "constraints order": good.replace("<minimum>0</minimum><maximum>5</maximum>", "<maximum>5</maximum><minimum>0</minimum>"),
        "default out of range": good.replace("<default>3</default>", "<default>9</default>"),
        "image type": good.replace('type="label"', 'type="mask"'),
        "index gap": good.replace("<index>0</index>", "<index>1</index>"),
        "index with flag": good.replace("<index>0</index>", "<longflag>in</longflag><index>0</index>"),
        "input return value": good.replace("<channel>output</channel></float-vector>", "</float-vector>"),
        "not well-formed": good.replace("</parameters>", ""),
        "category": good.replace("<category>Sagitta</category>", "<category>Filtering</category>"),
    }
    for what, text in broken.items():
        if not check(text):
            print(f"self-test: the checker accepted a description with a broken {what}")
            return False
    print(f"self-test: {len(broken)} broken descriptions rejected")
    return True


def main(argv):
    modules, runners = [], []
    i = 1
    ok = True
    while i < len(argv):
        if argv[i] == "--self-test":
            ok = self_test() and ok
        elif argv[i] == "--runner":
            runners.append((argv[i + 1], argv[i + 2]))
            i += 2
        else:
            modules.append(argv[i])
        i += 1
    if runners and len(runners) != len(modules):
        print("give one --runner pair per module")
        return 2
    for k, module in enumerate(modules):
        r = subprocess.run([module, "--xml"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{module} --xml: exit {r.returncode}: {r.stderr}")
            ok = False
            continue
        problems = check(r.stdout)
        for p in problems:
            print(f"{module}: {p}")
        ok = ok and not problems
        if runners:
            fresh = subprocess.run([runners[k][0], runners[k][1], "--xml"], capture_output=True, text=True)
            if fresh.stdout != r.stdout:
                print(f"{module}: embedded description differs from `{runners[k][0]} {runners[k][1]} --xml`")
                ok = False
        if not problems:
            root = ET.fromstring(r.stdout)
            count = sum(len(g) - 2 for g in root.findall("parameters"))
            print(f"{module}: valid ({len(root.findall('parameters'))} groups, {count} parameters)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
