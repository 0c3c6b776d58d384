"""Graph diff: matching by name then structure, the reported differences, ONNX in any mix, the CLI.

The property test makes random edits (add, remove, rename, change a parameter, rewire, group
into a block) on a copy of a project, which keeps every node id, so the true correspondence is
known: the diff, which never looks at ids, must find exactly it and report exactly what the
ids say changed, no more.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.builder import GraphBuilder
from workbench.cli import main
from workbench.diff import ABSENT, ProjectDiff, diff_files, diff_graphs, diff_projects
from workbench.errors import GraphError
from workbench.graph import Graph
from workbench.graph_match import canonical
from workbench.grouping import Grouping
from workbench.layers.dims import fmt_shape
from workbench.project import Project, load_project, loads_project, save_project
from workbench.shapes import infer

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
logging.getLogger("torch.onnx").setLevel(logging.ERROR)


def copy(p: Project) -> Project:
    return loads_project(p.to_json())  # ids are kept: the truth the diff must find again


def residual_project(blocks: int = 12) -> Project:
    b = GraphBuilder(Project(name="residual").graph)
    x = b.input((8, 6, 6), name="image")
    for i in range(blocks):
        h = b.layer("Conv2d", x, out_channels=8, padding=[1, 1], name=f"conv{i}")
        h = b.layer("BatchNorm2d", h, name=f"bn{i}")
        h = b.layer("ReLU", h, name=f"relu{i}")
        x = b.layer("Add", h, x, name=f"add{i}")
    b.output(b.layer("Linear", b.layer("Flatten", x, name="flat"), out_features=5, name="fc"), name="out")
    b.auto_layout()
    p = Project(b.graph, "residual")
    return p


BASES = {
    "resnet": lambda: load_project(SAMPLES / "digits_resnet.json"),
    "cnn": lambda: load_project(SAMPLES / "digits_cnn.json"),
    "transformer": lambda: load_project(SAMPLES / "digits_transformer.json"),
    "residual": residual_project,
}


# --------------------------------------------------------------------------- the truth, from ids


def _shape_text(graph: Graph) -> dict[str, dict[str, str]]:
    out = {}
    for nid, info in infer(graph).all().items():
        node = graph.nodes[nid]
        if node.spec.role == "output":
            out[nid] = {"x": fmt_shape(info.inputs["x"]) if info.status == "ok" else info.status}
        else:
            out[nid] = {p: fmt_shape(s) for p, s in info.outputs.items()} if info.status == "ok" else {
                p: info.status for p in node.output_ports}
    return out


def truth(ga: Graph, gb: Graph, changed_blocks: set[str]) -> dict[str, Any]:
    """The differences between two graphs whose corresponding nodes share ids."""
    sa, sb = _shape_text(ga), _shape_text(gb)
    changes = {}
    for nid, a in ga.nodes.items():
        b = gb.nodes.get(nid)
        if b is None:
            continue
        c: dict[str, Any] = {}
        if a.name != b.name:
            c["name"] = (a.name, b.name)
        if a.type != b.type:
            c["type"] = (a.type, b.type)
        keys = set(a.params) | set(b.params)
        params = {k for k in keys if canonical(a.params.get(k)) != canonical(b.params.get(k))}
        if params:
            c["params"] = params
        shapes = {p for p in set(sa[nid]) | set(sb[nid]) if sa[nid].get(p) != sb[nid].get(p)}
        if shapes:
            c["shapes"] = shapes
        ports = set(a.input_ports) | set(b.input_ports)
        wiring = set()
        for port in ports:
            ea, eb = ga.edge_into(nid, port), gb.edge_into(nid, port)
            if (ea and (ea.src, ea.src_port)) != (eb and (eb.src, eb.src_port)):
                wiring.add(port)
        if wiring:
            c["wiring"] = wiring
        if a.type == b.type and a.type in changed_blocks:
            c["block"] = a.type
        if c:
            changes[nid] = c
    return {"removed": set(ga.nodes) - set(gb.nodes), "added": set(gb.nodes) - set(ga.nodes), "changes": changes}


def reported(g: Any) -> dict[str, Any]:
    changes = {}
    for c in g.changes:
        assert c.a.id == c.b.id, f"{c.a.name} matched with {c.b.name}, another node"
        d: dict[str, Any] = {}
        if c.renamed:
            d["name"] = (c.a.name, c.b.name)
        if c.type:
            d["type"] = c.type
        for key in ("params", "shapes", "wiring"):
            if getattr(c, key):
                d[key] = set(getattr(c, key))
        if c.block:
            d["block"] = c.block
        changes[c.a.id] = d
    return {"removed": {n.id for n in g.removed}, "added": {n.id for n in g.added}, "changes": changes}


def check_against_truth(pa: Project, pb: Project, d: ProjectDiff) -> None:
    common = [bid for bid in pa.blocks.defs if bid in pb.blocks.defs]
    inner = {bid: truth(pa.blocks.defs[bid].graph, pb.blocks.defs[bid].graph, set()) for bid in common}
    # nested blocks are not made by the edits below: one level of block truth is enough
    changed = {bid for bid, t in inner.items() if t["removed"] or t["added"] or t["changes"]}
    model = d.graphs[0]
    assert model.matches == [(nid, nid) for nid in pa.graph.nodes if nid in pb.graph.nodes]
    assert reported(model) == truth(pa.graph, pb.graph, changed)
    assert d.blocks_added == [b for b in pb.blocks.defs if b not in pa.blocks.defs]
    assert d.blocks_removed == [b for b in pa.blocks.defs if b not in pb.blocks.defs]
    for bd in d.blocks:
        assert bd.a_id == bd.b_id
        assert reported(bd.graph) == inner[bd.a_id]
        assert bd.equal == (bd.a_id not in changed)
    assert d.equal == (not any(t for t in truth(pa.graph, pb.graph, changed).values()) and not changed
                       and not d.blocks_added and not d.blocks_removed)


# --------------------------------------------------------------------------- random edits


SAME_SHAPE = ("ReLU", "Tanh", "Sigmoid", "Dropout", "Identity", "GELU")


def _new_value(decl: Any, value: Any, rnd: random.Random) -> list[Any]:
    kind = decl.kind
    if kind == "bool":
        return [not value]
    if kind == "choice":
        return [c for c in decl.choices if c != value]
    if kind == "int":
        return [value + 1, value * 2, value - 1]
    if kind == "float":
        return [value * 2 + 0.25, value / 2, round(rnd.uniform(0.05, 0.9), 3)]
    if kind == "int_tuple" and value:
        return [tuple(v + 1 for v in value), tuple(max(1, v - 1) for v in value)]
    return []


class Editor:
    """Applies random edits to ``project`` (a copy of the original), each in its own neighbourhood,
    and records them."""

    def __init__(self, project: Project, rnd: random.Random) -> None:
        self.p, self.rnd = project, rnd
        self.touched: set[str] = set()
        self.blocks = list(project.blocks)  # the blocks both projects have (not those grouping makes)
        self.done: list[tuple[Any, ...]] = []
        self.k = 0

    def _graph(self, inner_ok: bool = False) -> tuple[Graph, str | None]:
        if inner_ok and self.blocks and self.rnd.random() < 0.5:
            block = self.rnd.choice(self.blocks)
            return block.graph, block.id
        return self.p.graph, None

    def _near(self, g: Graph, nid: str) -> set[str]:
        return {nid} | ({e.src for e in g.edges_into(nid)} | {e.dst for e in g.edges_from(nid)} if nid in g.nodes
                        else set())

    def _ok(self, g: Graph, where: str | None, *ids: str, strict: bool = True) -> bool:
        """Whether the nodes (and, ``strict``, their neighbours) are untouched by earlier edits."""
        return not any(f"{where}:{m}" in self.touched for n in ids for m in (self._near(g, n) if strict else {n}))

    def _free(self, g: Graph, where: str | None, strict: bool = True) -> list[str]:
        return [n.id for n in g if n.spec.role == "layer" and self._ok(g, where, n.id, strict=strict)]

    def _touch(self, g: Graph, where: str | None, *ids: str, near: bool = True) -> None:
        """Mark nodes (and, ``near``, their neighbours) as edited.  A rename or a parameter change
        may sit next to another edit; an edit of the wiring may not, or the truth is ambiguous (a
        renamed node beside a removed node of its type could be either of them)."""
        for nid in ids:
            self.touched |= {f"{where}:{m}" for m in (self._near(g, nid) if near else {nid})}

    def rename(self) -> bool:
        g, where = self._graph(inner_ok=True)
        ids = self._free(g, where, strict=False)
        if not ids:
            return False
        nid = self.rnd.choice(ids)
        self._touch(g, where, nid, near=False)
        new = f"{g.nodes[nid].name}_v{self.k}"
        self.done.append(("rename", where, nid, g.rename(nid, new), new))
        return True

    def param(self) -> bool:
        g, where = self._graph(inner_ok=True)
        ids = self._free(g, where, strict=False)
        self.rnd.shuffle(ids)
        for nid in ids:
            node = g.nodes[nid]
            decls = list(node.spec.params)
            self.rnd.shuffle(decls)
            for decl in decls:
                old = node.params[decl.name]
                for value in _new_value(decl, old, self.rnd):
                    try:
                        g.set_params(nid, {decl.name: value})
                    except GraphError:
                        continue
                    if canonical(g.nodes[nid].params[decl.name]) == canonical(old):
                        g.set_params(nid, {decl.name: old})
                        continue
                    self._touch(g, where, nid, near=False)
                    self.done.append(("param", where, nid, decl.name, old, g.nodes[nid].params[decl.name]))
                    return True
        return False

    def add(self) -> bool:
        g = self.p.graph
        wires = [e for e in g.sorted_edges() if self._ok(g, None, e.src, e.dst)]
        if not wires:
            return False
        e = self.rnd.choice(wires)
        g.disconnect(e)
        node = g.add_node(self.rnd.choice(SAME_SHAPE), {}, f"added{self.k}", node_id=f"new{self.k}")
        g.connect(e.src, e.src_port, node.id, "x")
        g.connect(node.id, "y", e.dst, e.dst_port)
        self._touch(g, None, node.id, e.src, e.dst)
        self.done.append(("add", None, node.id))
        return True

    def remove(self) -> bool:
        g = self.p.graph
        ids = [n for n in self._free(g, None) if g.can_remove([n]) is None]
        if not ids:
            return False
        nid = self.rnd.choice(ids)
        ins, outs = g.edges_into(nid), g.edges_from(nid)
        self._touch(g, None, nid)
        g.remove_node(nid)
        if len(ins) == 1:  # bypass it, as a user deleting a layer in a chain would
            for e in outs:
                if g.can_connect(ins[0].src, ins[0].src_port, e.dst, e.dst_port) is None:
                    g.connect(ins[0].src, ins[0].src_port, e.dst, e.dst_port)
        self.done.append(("remove", None, nid))
        return True

    def rewire(self) -> bool:
        g = self.p.graph
        ids = self._free(g, None)
        self.rnd.shuffle(ids)
        for nid in ids:
            for e in g.edges_into(nid):
                later = g.descendants(nid) | {nid}
                sources = [(n.id, port) for n in g for port in n.output_ports
                           if n.id not in later and (n.id, port) != (e.src, e.src_port) and self._ok(g, None, n.id)]
                if not sources or not self._ok(g, None, e.src):
                    continue
                src, port = self.rnd.choice(sources)
                g.disconnect(e)
                g.connect(src, port, nid, e.dst_port)
                self._touch(g, None, nid, src, e.src)
                self.done.append(("rewire", None, nid, e.dst_port, e.src, src))
                return True
        return False

    def group(self) -> bool:
        g = self.p.graph
        ids = self._free(g, None)
        self.rnd.shuffle(ids)
        for nid in ids:
            chain, size = [nid], self.rnd.randint(1, 3)
            while len(chain) < size:
                outs = g.edges_from(chain[-1])
                if len(outs) != 1 or outs[0].dst not in ids:
                    break
                chain.append(outs[0].dst)
            try:
                change = Grouping(g, chain, f"Group {self.k}", instance_name=f"grouped{self.k}")
            except GraphError:
                continue
            change.instance_id = f"grp{self.k}"
            self._touch(g, None, *chain)
            change.apply()
            self._touch(g, None, change.instance_id)
            self.done.append(("group", None, tuple(chain), change.block_id, change.instance_id))
            return True
        return False

    def apply(self, kind: str) -> bool:
        self.k += 1
        return bool(getattr(self, kind)())


KINDS = ("add", "remove", "rename", "param", "rewire", "group")
EDITS_SEEN: list[tuple[Any, ...]] = []


def find_edit(d: ProjectDiff, edit: tuple[Any, ...]) -> bool:
    """Whether the diff reports this edit as what it is."""
    kind, where = edit[0], edit[1]
    g = d.graphs[0] if where is None else next(b.graph for b in d.blocks if b.a_id == where)
    by_id = {c.a.id: c for c in g.changes}
    if kind == "rename":
        c = by_id.get(edit[2])
        return c is not None and (c.a.name, c.b.name) == (edit[3], edit[4])
    if kind == "param":
        c = by_id.get(edit[2])
        return c is not None and c.params.get(edit[3]) == (edit[4], edit[5])
    if kind == "add":
        return edit[2] in {n.id for n in g.added}
    if kind == "remove":
        return edit[2] in {n.id for n in g.removed}
    if kind == "rewire":
        c = by_id.get(edit[2])
        return c is not None and edit[3] in c.wiring
    if kind == "group":
        _, _, chain, block_id, instance = edit
        return (all(g.grouped.get(n) == block_id for n in chain) and instance in {n.id for n in g.added}
                and block_id in d.blocks_added)
    raise AssertionError(kind)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3))
def test_random_edits_are_all_found_with_no_false_difference(seed: int, kinds: list[str]) -> None:
    base = sorted(BASES)[seed % len(BASES)]  # evenly (hypothesis favours the first of a sampled_from)
    pa = BASES[base]()
    pb = copy(pa)
    ed = Editor(pb, random.Random(seed))
    for kind in kinds:
        ed.apply(kind)
    d = diff_projects(pa, pb)
    for edit in ed.done:
        assert find_edit(d, edit), f"{edit} not reported:\n{d.text()}"
    check_against_truth(pa, pb, d)
    assert d.equal == (not ed.done)
    EDITS_SEEN.extend(ed.done)


def test_the_property_test_made_at_least_100_edits_of_every_kind() -> None:
    if not EDITS_SEEN:
        pytest.skip("run with the property test (same session)")
    kinds = [e[0] for e in EDITS_SEEN]
    assert len(kinds) >= 100 and set(kinds) == set(KINDS), {k: kinds.count(k) for k in KINDS}


# --------------------------------------------------------------------------- matching


def test_renamed_nodes_are_matched_not_removed_and_added() -> None:
    pa = residual_project(6)
    pb = copy(pa)
    g = pb.graph
    for nid in list(g.nodes):  # every name differs: the structure alone matches them
        g.rename(nid, f"renamed_{g.nodes[nid].name}")
    d = diff_projects(pa, pb)
    model = d.graphs[0]
    assert not model.added and not model.removed and not model.changed
    assert model.matches == [(n, n) for n in pa.graph.nodes]
    assert len(model.renamed) == len(pa.graph) and all(c.matched_by == "structure" for c in model.changes)


def test_a_node_renamed_and_changed_is_matched_by_its_wiring() -> None:
    pa = load_project(SAMPLES / "digits_cnn.json")
    pb = copy(pa)
    fc = pb.graph.by_name("fc").id
    pb.graph.rename(fc, "dense")
    pb.graph.set_params(fc, {"out_features": 80})  # its colour differs now: only its wires say who it is
    d = diff_projects(pa, pb)
    model = d.graphs[0]
    assert not model.added and not model.removed
    by_name = {c.b.name: c for c in model.changes}
    c = by_name["dense"]
    assert (c.a.name, c.a.id, c.b.id, c.matched_by) == ("fc", fc, fc, "structure")
    assert c.params == {"out_features": (64, 80)} and c.shapes == {"y": ("[N, 64]", "[N, 80]")}
    assert set(by_name) == {"dense", "relu3", "dropout"}  # downstream shapes change, nothing else
    assert by_name["dropout"].shapes == {"y": ("[N, 64]", "[N, 80]")}


def test_a_retyped_node_keeps_its_name_match_and_reports_the_type_and_parameters() -> None:
    pa = load_project(SAMPLES / "digits_cnn.json")
    pb = copy(pa)
    g = pb.graph
    relu = g.by_name("relu1")
    ins, outs = g.edges_into(relu.id), g.edges_from(relu.id)
    g.remove_node(relu.id)
    leaky = g.add_node("LeakyReLU", {"negative_slope": 0.2}, "relu1")
    g.connect(ins[0].src, ins[0].src_port, leaky.id, "x")
    g.connect(leaky.id, "y", outs[0].dst, outs[0].dst_port)
    d = diff_projects(pa, pb)
    (c,) = d.graphs[0].changes
    assert (c.a.id, c.b.id, c.matched_by) == (relu.id, leaky.id, "name")
    assert c.type == ("ReLU", "LeakyReLU") and c.params == {"negative_slope": (ABSENT, 0.2)}
    assert not c.wiring and not c.shapes
    assert c.to_dict()["params"] == {"negative_slope": {"new": 0.2}}


def test_a_name_does_not_match_an_input_with_a_layer() -> None:
    pa = load_project(SAMPLES / "digits_cnn.json")
    pb = copy(pa)
    g = pb.graph
    g.rename(g.by_name("image").id, "pixels")
    g.rename(g.by_name("conv1").id, "image")  # the old Input's name, now on a layer
    model = diff_projects(pa, pb).graphs[0]
    assert model.matches == [(n, n) for n in pa.graph.nodes]
    assert [(c.a.name, c.b.name, c.changed) for c in model.changes] == [("image", "pixels", False),
                                                                        ("conv1", "image", False)]


def test_float_parameters_compare_at_float32_precision() -> None:
    pa = load_project(SAMPLES / "digits_cnn.json")
    pb = copy(pa)
    bn = pb.graph.by_name("bn1").id
    pb.graph.set_params(bn, {"eps": 9.999999747378752e-06})  # 1e-5 as ONNX's float32 stores it
    assert diff_projects(pa, pb).equal
    pb.graph.set_params(bn, {"eps": 1.001e-5})
    (c,) = diff_projects(pa, pb).graphs[0].changes
    assert c.params == {"eps": (1e-5, 1.001e-5)}


def test_block_definitions_are_compared_inside_and_their_instances_marked() -> None:
    pa = load_project(SAMPLES / "digits_resnet.json")
    pb = copy(pa)
    inside = pb.blocks.defs["ResBlock"].graph
    inside.set_params(inside.by_name("bn2").id, {"momentum": 0.3})
    d = diff_projects(pa, pb)
    assert not d.equal
    assert [(c.b.name, c.block) for c in d.graphs[0].changes] == [("block1", "ResBlock"), ("block2", "ResBlock")]
    (bd,) = d.blocks
    assert [(c.b.name, c.params) for c in bd.graph.changes] == [("bn2", {"momentum": (0.1, 0.3)})]
    text = d.text()
    assert "block ResBlock: definition differs" in text and "momentum: 0.1 -> 0.3" in text


def test_a_newly_exposed_block_parameter_is_a_change_of_the_block() -> None:
    pa = load_project(SAMPLES / "digits_resnet.json")
    pb = copy(pa)
    pb.blocks.expose("ResBlock", pb.blocks.defs["ResBlock"].graph.by_name("bn1").id, "momentum", "mom")
    d = diff_projects(pa, pb)
    (bd,) = d.blocks
    assert bd.graph.equal and bd.params == {"mom": ("", "bn1.momentum")} and not bd.equal
    assert [(c.b.name, c.block, c.params) for c in d.graphs[0].changes] == [
        ("block1", "ResBlock", {"mom": (ABSENT, 0.1)}), ("block2", "ResBlock", {"mom": (ABSENT, 0.1)})]


def test_a_block_with_another_id_and_the_same_inside_is_the_same_block() -> None:
    pa = load_project(SAMPLES / "digits_resnet.json")
    doc = json.loads(pa.to_json())
    doc["blocks"] = {"Residual": doc["blocks"]["ResBlock"]}
    for n in doc["graph"]["nodes"]:
        if n["type"] == "ResBlock":
            n["type"] = "Residual"
    pb = loads_project(json.dumps(doc))
    d = diff_projects(pa, pb)
    assert not d.blocks_added and not d.blocks_removed
    assert [(b.a_id, b.b_id) for b in d.blocks] == [("ResBlock", "Residual")]
    assert [(c.b.name, c.type, c.block) for c in d.graphs[0].changes] == [
        ("block1", ("ResBlock", "Residual"), None), ("block2", ("ResBlock", "Residual"), None)]


def test_the_report_is_deterministic_across_processes(tmp_path: Path) -> None:
    import subprocess
    import sys

    pa = residual_project(8)
    pb = copy(pa)
    ed = Editor(pb, random.Random(7))
    for kind in KINDS:
        ed.apply(kind)
    save_project(pa, tmp_path / "a.json")
    save_project(pb, tmp_path / "b.json")
    outs = set()
    for seed in ("1", "2"):  # string hashing differs by process: the output must not
        r = subprocess.run([sys.executable, "-m", "workbench", "diff", str(tmp_path / "a.json"),
                            str(tmp_path / "b.json"), "--json"], capture_output=True, text=True, timeout=120,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed})
        assert r.returncode == 1, r.stderr
        outs.add(r.stdout)
    assert len(outs) == 1


def test_two_1000_node_graphs_all_renamed_match_completely() -> None:
    pa = residual_project(250)
    pb = copy(pa)
    for nid in list(pb.graph.nodes):
        pb.graph.rename(nid, "z" + pb.graph.nodes[nid].name)
    model = diff_graphs(pa.graph, pb.graph)
    assert len(pa.graph) > 1000 and model.matches == [(n, n) for n in pa.graph.nodes]
    assert not model.changed


# --------------------------------------------------------------------------- ONNX


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from workbench.export.onnx_export import export_onnx

    tmp = tmp_path_factory.mktemp("diff_onnx")
    export_onnx(load_project(SAMPLES / "digits_resnet.json"), tmp / "resnet.onnx")
    # a simple model the importer maps op by op exactly (Dropout is gone from an export in eval mode)
    b = GraphBuilder(Project(name="plain").graph)
    x = b.input((1, 8, 8), name="image")
    x = b.layer("Conv2d", x, out_channels=6, padding=[1, 1], name="conv")
    x = b.layer("BatchNorm2d", x, name="bn")
    x = b.layer("ReLU", x, name="act1")
    x = b.layer("MaxPool2d", x, kernel_size=[2, 2], stride=[2, 2], name="pool")
    x = b.layer("Flatten", x, name="flat")
    x = b.layer("Linear", x, out_features=20, name="hidden")
    x = b.layer("Tanh", x, name="act2")
    b.output(b.layer("Linear", x, out_features=10, name="classifier"), name="logits")
    plain = Project(b.auto_layout(), "plain")
    save_project(plain, tmp / "plain.json")
    export_onnx(plain, tmp / "plain.onnx")
    model = onnx.load(str(tmp / "plain.onnx"))
    del model.metadata_props[:]  # no project inside: the importer maps it op by op
    onnx.save(model, str(tmp / "plain_ops.onnx"))
    return {"resnet": tmp / "resnet.onnx", "plain": tmp / "plain.json", "plain_ops": tmp / "plain_ops.onnx"}


def test_a_project_against_its_own_onnx_export_shows_no_difference(exported: dict[str, Path]) -> None:
    d = diff_files(SAMPLES / "digits_resnet.json", exported["resnet"])
    assert d.equal, d.text()
    assert "ONNX, lossless" in d.b and len(d.blocks) == 1


def test_an_op_by_op_reimport_differs_only_in_the_names_the_importer_gives(exported: dict[str, Path]) -> None:
    d = diff_files(exported["plain"], exported["plain_ops"])
    assert "mapped op by op" in d.b
    model = d.graphs[0]
    assert not model.added and not model.removed and not model.changed, d.text()
    pa = load_project(exported["plain"])
    assert len(model.matches) == len(pa.graph)
    order = {nid: i for i, nid in enumerate(pa.graph.topological_order())}
    from workbench.diff import load_model

    pb = load_model(exported["plain_ops"]).project
    order_b = {nid: i for i, nid in enumerate(pb.graph.topological_order())}
    # a chain: the matching must pair the nodes at the same place
    assert all(order[x] == order_b[y] for x, y in model.matches)
    assert {c.a.name for c in model.renamed} and all(c.matched_by == "structure" for c in model.renamed)


# --------------------------------------------------------------------------- command line


def test_cli_exit_statuses_and_json(exported: dict[str, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    resnet = str(SAMPLES / "digits_resnet.json")
    assert main(["diff", resnet, str(exported["resnet"])]) == 0
    assert capsys.readouterr().out.rstrip().endswith("equal")
    pb = load_project(SAMPLES / "digits_resnet.json")
    pb.graph.rename(pb.graph.by_name("gap").id, "pool")
    pb.graph.set_params(pb.graph.by_name("classifier").id, {"out_features": 12})
    save_project(pb, tmp_path / "b.json")
    assert main(["diff", resnet, str(tmp_path / "b.json")]) == 1
    out = capsys.readouterr().out
    assert "gap -> pool" in out and "out_features: 10 -> 12" in out and "shape y: [N, 10] -> [N, 12]" in out
    assert main(["diff", str(exported["resnet"]), str(tmp_path / "b.json"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    model = doc["graphs"][0]
    assert doc["equal"] is False and model["renamed"] == [{"old": "gap", "new": "pool"}]
    (fc,) = [c for c in model["changed"] if c["b"]["name"] == "classifier"]
    assert fc["params"] == {"out_features": {"old": 10, "new": 12}}
    assert fc["shapes"] == {"y": {"old": "[N, 10]", "new": "[N, 12]"}}
    # unreadable inputs: exit 2 with the reason, no traceback
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    (tmp_path / "bad.json").write_text("{")
    for bad, why in ((tmp_path / "missing.json", "cannot read"), (tmp_path / "junk.onnx", "not a valid ONNX"),
                     (tmp_path / "bad.json", "not valid JSON")):
        assert main(["diff", resnet, str(bad)]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err


def test_cli_names_the_unsupported_operators_of_a_model_it_cannot_read(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    vi = onnx.helper.make_tensor_value_info
    node = onnx.helper.make_node("Erf", ["x"], ["y"], name="the_node")
    graph = onnx.helper.make_graph([node], "g", [vi("x", onnx.TensorProto.FLOAT, ["N", 4])],
                                   [vi("y", onnx.TensorProto.FLOAT, ["N", 4])])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(tmp_path / "e.onnx"))
    assert main(["diff", str(tmp_path / "e.onnx"), str(SAMPLES / "digits_cnn.json")]) == 2
    err = capsys.readouterr().err
    assert "Erf x1 (the_node)" in err and "--allow-partial" not in err
