"""Data for the fake Treasure Data server (td_server.py): the seeded parent segments, the canonical form of a
folder tree (for comparing a restored tree with its source), and a minimal msgpack decoder for v3 imports.
Python standard library only."""
import copy
import json
import struct


def msgpack_unpack_all(data):
    """Minimal msgpack decoder (maps, arrays, strings, ints, floats, bool, nil, bin)."""
    pos = 0
    out = []

    def read(n):
        nonlocal pos
        b = data[pos:pos + n]
        if len(b) < n:
            raise ValueError("truncated msgpack")
        pos += n
        return b

    def obj():
        t = read(1)[0]
        if t <= 0x7F:
            return t
        if 0x80 <= t <= 0x8F:
            return {obj(): obj() for _ in range(t & 0x0F)}
        if 0x90 <= t <= 0x9F:
            return [obj() for _ in range(t & 0x0F)]
        if 0xA0 <= t <= 0xBF:
            return read(t & 0x1F).decode()
        if t >= 0xE0:
            return t - 0x100
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if t in simple:
            return simple[t]
        fmt = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i",
               0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
        if t in fmt:
            f = fmt[t]
            return struct.unpack(f, read(struct.calcsize(f)))[0]
        lens = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}
        if t in lens:
            f = lens[t]
            n = struct.unpack(f, read(struct.calcsize(f)))[0]
            raw = read(n)
            return raw.decode() if t in (0xD9, 0xDA, 0xDB) else raw
        if t in (0xDC, 0xDD):
            f = ">H" if t == 0xDC else ">I"
            n = struct.unpack(f, read(struct.calcsize(f)))[0]
            return [obj() for _ in range(n)]
        if t in (0xDE, 0xDF):
            f = ">H" if t == 0xDE else ">I"
            n = struct.unpack(f, read(struct.calcsize(f)))[0]
            return {obj(): obj() for _ in range(n)}
        raise ValueError("unsupported msgpack type 0x%02x" % t)

    while pos < len(data):
        out.append(obj())
    return out


REF_TYPES = ("Reference", "PredictiveScoreReference")


def walk_refs(rule, fn):
    if isinstance(rule, dict):
        if rule.get("type") in REF_TYPES and "id" in rule:
            fn(rule)
        for v in rule.values():
            walk_refs(v, fn)
    elif isinstance(rule, list):
        for v in rule:
            walk_refs(v, fn)


def seed_roundtrip(st):
    """A parent segment whose tree is 5 folder levels deep, with cross-folder references (one at depth 4
    inside a rule), predictive segments, a realtime segment, an empty-rule segment and a funnel."""
    a = st.add_audience({
        "name": "ps_orig", "description": "original", "scheduleType": "daily", "scheduleOption": "00:00",
        "timezone": "UTC", "workflowHiveOnly": False, "hiveEngineVersion": "0.13", "hivePoolName": None,
        "prestoPoolName": None, "master": {"parentDatabaseName": "db", "parentTableName": "customers"},
        "attributes": [{"name": "age", "type": "number", "parentDatabaseName": "db", "parentTableName": "attrs",
                        "parentColumn": "age", "parentKey": "cid", "foreignKey": "cid", "groupingName": None}],
        "behaviors": [{"name": "pv", "parentDatabaseName": "db", "parentTableName": "pv", "parentKey": "cid",
                       "foreignKey": "cid", "schema": [{"name": "url", "type": "string", "parentColumn": "url"}],
                       "scheduleType": "daily", "isRealtime": False}],
        "customerGroup": None, "audienceFilters": []})
    aid = a["id"]
    root = st.add_entity("folder-segment", {"audienceId": aid, "name": "ps_orig Root", "description": None}, None)
    st.ps_root[aid] = root["id"]
    f = {0: root["id"]}
    names = ["L1", "L2", "L3", "L4", "L5"]
    for depth, name in enumerate(names, start=1):
        f[depth] = st.add_entity("folder-segment", {"audienceId": aid, "name": name, "description": "d" + name},
                                 f[depth - 1])["id"]
    side = st.add_entity("folder-segment", {"audienceId": aid, "name": "Side", "description": None}, root["id"])["id"]

    def val(n):
        return {"type": "Value", "leftValue": {"name": "age"}, "operator": {"type": "Greater", "rightValue": n, "not": False}}

    def seg(name, folder, rule, etype="segment-batch"):
        return st.add_entity(etype, {"audienceId": aid, "name": name, "description": "seg " + name, "rule": rule,
                                     "countPopulation": True}, folder)["id"]

    base = seg("base", f[5], {"type": "And", "conditions": [val(20)]})
    empty = seg("empty_rule", side, {})
    rt = seg("realtime", f[2], {"type": "And", "conditions": [val(30)]}, "segment-realtime")
    mid = seg("mid", side, {"type": "And", "conditions": [{"type": "Reference", "id": base, "exclude": False}]})
    pred = st.add_entity("predictive-segment", {"audienceId": aid, "segmentId": base, "name": "pred_base",
                                                "description": "scores base"}, f[3])["id"]
    # a reference at depth 4 of the rule, across folders, to a predictive score and a segment
    deep_rule = {"type": "And", "conditions": [{"type": "Or", "conditions": [{"type": "And", "conditions": [
        {"type": "Or", "conditions": [
            {"type": "Reference", "id": mid, "exclude": False},
            {"type": "PredictiveScoreReference", "id": pred, "operator": {"type": "Greater", "rightValue": 0.5}},
        ]}]}]}, val(10)]}
    seg("deep", f[1], deep_rule)
    seg("same_name", f[4], {"type": "And", "conditions": [{"type": "Reference", "id": empty, "exclude": True}]})
    seg("same_name", side, {"type": "And", "conditions": [val(1)]})
    st.add_entity("funnel", {"audienceId": aid, "name": "a funnel", "stages": []}, side)
    return {"audience_id": aid, "root_folder_id": root["id"], "segments": 8}


def seed_bench(st, folders, segments):
    a = st.add_audience({"name": "ps_bench", "scheduleType": "none", "timezone": "UTC",
                         "master": {"parentDatabaseName": "db", "parentTableName": "customers"},
                         "attributes": [], "behaviors": []})
    aid = a["id"]
    root = st.add_entity("folder-segment", {"audienceId": aid, "name": "ps_bench Root"}, None)
    st.ps_root[aid] = root["id"]
    fids = []
    for i in range(folders):
        # a tree: every folder's parent is an earlier folder (or the root), depth grows to ~5
        parent = root["id"] if i < 10 else fids[(i - 10) // 5]
        fids.append(st.add_entity("folder-segment", {"audienceId": aid, "name": "folder %d" % i}, parent)["id"])
    sids = []
    for i in range(segments):
        rule = {"type": "And", "conditions": [{"type": "Value", "leftValue": {"name": "age"},
                                               "operator": {"type": "Greater", "rightValue": i, "not": False}}]}
        if sids and i % 3 == 0:
            rule["conditions"].append({"type": "Or", "conditions": [
                {"type": "Reference", "id": sids[(i * 7) % len(sids)], "exclude": False}]})
        sids.append(st.add_entity("segment-batch", {"audienceId": aid, "name": "segment %d" % i, "rule": rule},
                                  fids[i % folders])["id"])
    return {"audience_id": aid, "root_folder_id": root["id"], "segments": segments}


def canon(st, folder_id, skip=()):
    """The tree under a folder, ids replaced by names/paths: equal trees give equal canon()."""
    path = {}

    def paths(fid, p):
        for cid in st.children.get(fid, []):
            e = st.entities[cid]
            path[cid] = p + "/" + e["attributes"]["name"] + ":" + e["type"]
            if e["type"] == "folder-segment":
                paths(cid, path[cid])

    paths(folder_id, "")
    volatile = {"createdAt", "updatedAt", "audienceId", "population"}

    def node(fid):
        items = []
        for cid in st.children.get(fid, []):
            e = st.entities[cid]
            if e["type"] in skip:
                continue
            attrs = {k: v for k, v in copy.deepcopy(e["attributes"]).items() if k not in volatile}
            if "segmentId" in attrs:
                attrs["segmentId"] = path.get(attrs["segmentId"], "OUTSIDE:" + str(attrs["segmentId"]))

            def fix(r):
                r["id"] = path.get(r["id"], "OUTSIDE:" + str(r["id"]))

            walk_refs(attrs.get("rule"), fix)
            n = {"type": e["type"], "attributes": attrs}
            if e["type"] == "folder-segment":
                n["children"] = node(cid)
            items.append(n)
        items.sort(key=lambda n: json.dumps(n, sort_keys=True))
        return items

    return node(folder_id)
