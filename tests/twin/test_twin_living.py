"""The living twin: exact kinetics, Laplace calibration, assimilation, QA, audit, save/load.

Independent references: the matrix-exponential solution of tdt.pbpk (``model.simulate``) for the
spectral kinetics; Bayesian calibration on patients drawn from the prior (the posterior interval
must cover the truth at its nominal rate); hash chains re-computed with hashlib in the test.
Synthetic imaging is generated with ``model.simulate`` (not with the twin's own solver).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import zipfile

import numpy as np
import pytest

from tdt.errors import InputError
from tdt.pbpk import Administration, Schedule, reduced_linear
from tdt.twin import (
    AuditLog,
    Calibration,
    CycleData,
    PatientRecord,
    Twin,
    credible_width,
    exceedance_probability,
)
from tdt.twin._assimilate import GaussianPosterior, assimilate_laplace
from tdt.twin._twin_models import DEFAULT_MODEL_ORGANS

TIMES = np.array([4.0, 24.0, 48.0, 96.0, 168.0])
IMAGED = ("kidneys", "salivary_glands", "liver", "spleen", "red_marrow", "lesion_1", "lesion_2")
RECORD = PatientRecord("test-patient", lesions={"lesion_1": 12.0, "lesion_2": 5.0},
                       risk_factors=("hypertension",))


@pytest.fixture(scope="module")
def model():
    return reduced_linear(DEFAULT_MODEL_ORGANS, lesions=("lesion_1", "lesion_2"))


def simulate_cycle(model, truth, activity, rng, relative_sd=0.1, calibration_sd=0.03, **kwargs):
    """Noisy VOI activities from the matrix-exponential solver of tdt.pbpk."""
    sim = model.simulate(truth, Schedule([Administration(0.0, activity, 100.0)]), TIMES)
    calib = np.exp(calibration_sd * rng.standard_normal())
    meas = {o: (TIMES, np.asarray(sim.activity_mbq[o]) * calib
                * np.exp(relative_sd * rng.standard_normal(len(TIMES)))) for o in IMAGED}
    kwargs.setdefault("calibration", Calibration(1.0, dt.date(2026, 1, 5)))
    kwargs.setdefault("imaged_on", dt.date(2026, 3, 1))
    return CycleData(activity, meas, relative_sd=relative_sd, **kwargs)


def draw_truth(model, rng, scale=1.0):
    prior = GaussianPosterior.from_model_priors(model)
    log_theta = prior.mean + scale * prior.sd_log * rng.standard_normal(len(prior.names))
    return {n: float(np.exp(v)) for n, v in zip(prior.names, log_theta, strict=True)}


def test_laplace_posterior_is_calibrated(model):
    """Truth drawn from the prior: the 90 % posterior intervals must cover it ~90 % of the time."""
    rng = np.random.default_rng(11)
    prior = GaussianPosterior.from_model_priors(model)
    inside, total = 0, 0
    kidney = prior.names.index("k_in_kidneys")
    for _ in range(16):
        truth = draw_truth(model, rng)
        post = assimilate_laplace(model, prior, simulate_cycle(model, truth, 7400.0, rng))
        assert post.diagnostics["converged"]
        z = (np.log([truth[n] for n in prior.names]) - post.mean) / post.sd_log
        inside += int(np.sum(np.abs(z) < 1.645))
        total += len(z)
        assert post.sd_log[kidney] < prior.sd_log[kidney]  # the data inform kidney uptake
    coverage = inside / total
    # 16 patients x 17 parameters (correlated within a patient): nominal 0.90
    assert 0.80 <= coverage <= 0.97, coverage


@pytest.fixture(scope="module")
def twin_after_two(model, tmp_path_factory):
    rng = np.random.default_rng(5)
    truth = draw_truth(model, rng, scale=0.5)
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    twin = Twin(RECORD, model=model, n_draws=400, seed=3, audit_path=audit)
    first = twin.assimilate(simulate_cycle(model, truth, 7400.0, rng))
    width_after_one = credible_width(twin.predict([7400.0, 7400.0]).cycle_dose("kidneys", 1))
    plan = twin.plan()
    twin.assimilate(simulate_cycle(model, truth, plan.next_activity_mbq, rng))
    width_after_two = credible_width(twin.predict([7400.0]).cycle_dose("kidneys", 0))
    return {"twin": twin, "truth": truth, "first_report": first, "plan": plan, "audit": audit,
            "ratio": width_after_two / width_after_one}


def test_assimilating_cycle_two_narrows_cycle_three_kidney_dose(twin_after_two):
    ratio = twin_after_two["ratio"]
    print(f"cycle-3 kidney dose 90 % CI width ratio (after cycle 2 / after cycle 1): {ratio:.3f}")
    assert ratio < 0.95


def test_plan_constraints_hold_on_resimulation_and_are_audited(twin_after_two):
    twin = twin_after_two["twin"]
    p = twin.plan()
    draws = twin.response(max(p.n_cycles, 1))
    for c in p.constraints:
        assert exceedance_probability(draws, p.activities_mbq, c) <= c.max_probability
    assert p.constraints[0].limit_gy == 28.0  # hypertension -> 28 Gy (Bodei 2008)
    last = twin.audit.entries[-1]
    assert last["event"] == "plan"
    assert last["payload"]["constraint_probabilities"] == p.to_dict()["constraint_probabilities"]
    assert last["payload"]["activities_mbq"] == list(p.activities_mbq)


def test_qa_report_contents(twin_after_two, model):
    report = twin_after_two["first_report"]
    names = {c.name for c in report.checks}
    assert names == {"plausibility", "time_points", "tia_extrapolated", "fit", "calibration",
                     "outliers", "provenance"}
    assert report.check("plausibility").status == "pass", report.check("plausibility").message
    assert report.check("fit").status == "pass"
    assert report.check("calibration").status == "pass"
    assert report.check("time_points").status == "pass"
    provenance = report.check("provenance").value
    assert provenance["versions"]["jax"] and provenance["data_sha256"] == report.data_sha256
    fractions = report.check("tia_extrapolated").value
    assert set(fractions) == set(IMAGED) and all(0 <= f < 1 for f in fractions.values())


def test_qa_flags_bad_calibration_and_outliers(model):
    rng = np.random.default_rng(9)
    truth = draw_truth(model, rng, scale=0.5)
    twin = Twin(RECORD, model=model, n_draws=400, seed=1)
    cycle = simulate_cycle(model, truth, 7400.0, rng, calibration=None)
    bad = dict(cycle.measurements)
    t, a = bad["kidneys"]
    bad["kidneys"] = (t, a * np.array([1, 1, 8.0, 1, 1]))  # one gross outlier at 48 h
    cycle = CycleData(cycle.activity_mbq, bad, None, dt.date(2026, 3, 1))
    report = twin.assimilate(cycle)
    assert report.check("calibration").status == "fail"
    assert report.status == "fail"
    outliers = report.check("outliers")
    assert outliers.status == "warn"
    assert any(o["organ"] == "kidneys" and o["time_h"] == 48.0 for o in outliers.value)
    expired = simulate_cycle(model, truth, 7400.0, rng,
                             calibration=Calibration(1.0, dt.date(2024, 1, 1), 365))
    assert twin.assimilate(expired).check("calibration").status == "fail"


def test_audit_log_is_hash_chained_and_append_only(twin_after_two, tmp_path):
    twin = twin_after_two["twin"]
    lines = twin_after_two["audit"].read_text().splitlines()
    assert len(lines) == len(twin.audit)
    previous = "0" * 64
    key = bytes.fromhex(open(os.environ["TDT_HMAC_KEY_FILE"]).read().strip())
    for line in lines:
        entry = json.loads(line)
        body = {k: v for k, v in entry.items() if k != "hash"}
        digest = hmac.new(key, json.dumps(body, sort_keys=True, separators=(",", ":"),
                                          default=str).encode(), hashlib.sha256).hexdigest()
        assert entry["hash"] == digest and entry["prev_hash"] == previous
        previous = entry["hash"]
    events = [json.loads(line)["event"] for line in lines]
    assert events[:4] == ["create", "assimilate", "plan", "assimilate"]
    tampered = [json.loads(line) for line in lines]
    tampered[1]["payload"]["activity_mbq"] = 1.0
    with pytest.raises(InputError, match="entry 1"):
        AuditLog(entries=tampered)
    # re-chained with plain sha256 (what an editor without the key can do): refused
    previous = "0" * 64
    for entry in tampered:
        entry["prev_hash"] = previous
        body = {k: v for k, v in entry.items() if k != "hash"}
        entry["hash"] = previous = hashlib.sha256(json.dumps(
            body, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()
    with pytest.raises(InputError, match="entry 0"):
        AuditLog(entries=tampered)


def test_save_load_round_trip_is_exact(twin_after_two, tmp_path):
    twin = twin_after_two["twin"]
    path = tmp_path / "patient.tdtwin"
    twin.save(path)
    loaded = Twin.load(path)
    a, b = twin.predict([8000.0, 6000.0, 5000.0]), loaded.predict([8000.0, 6000.0, 5000.0])
    np.testing.assert_array_equal(a.cumulative_bed_gy, b.cumulative_bed_gy)
    np.testing.assert_array_equal(a.cumulative_dose_gy, b.cumulative_dose_gy)
    assert twin.plan().to_dict()["activities_mbq"] == loaded.plan().to_dict()["activities_mbq"]
    assert loaded.n_assimilated == 2 and len(loaded.qa_reports) == 2


def test_format_1_file_loads_without_per_cycle_posteriors(twin_after_two, tmp_path):
    """A file written before format 2 has no per-cycle posteriors: it loads, and the twin then
    evaluates every past cycle with its current posterior (the format-1 behaviour)."""
    import io

    import xarray as xr

    twin = twin_after_two["twin"]
    path = tmp_path / "v2.tdtwin"
    twin.save(path)
    assert len(Twin.load(path).filtered) == 2
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with xr.open_dataset(io.BytesIO(members["arrays.nc"]), engine="h5netcdf") as ds:
        old = ds.drop_vars(["filtered_mean_log", "filtered_cov_log"]).load()
    nc = tmp_path / "arrays.nc"
    old.to_netcdf(nc, engine="h5netcdf")
    state = json.loads(members["state.json"])
    del state["filtered"]
    members["arrays.nc"] = nc.read_bytes()
    members["state.json"] = json.dumps(state, sort_keys=True).encode()
    header = json.loads(members.pop("header.json"))
    header["format_version"] = 1
    header["members"] = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}
    v1 = tmp_path / "v1.tdtwin"
    with zipfile.ZipFile(v1, "w") as zf:
        zf.writestr("header.json", json.dumps(header))
        for k, v in members.items():
            zf.writestr(k, v)
    with pytest.raises(InputError, match="no keyed integrity"):
        Twin.load(v1)
    with pytest.warns(UserWarning, match="unsigned"):
        loaded = Twin.load(v1, allow_unsigned=True)
    assert loaded.filtered == []
    current = loaded.posterior.log_draws(loaded._z)
    for past in loaded.past_log_draws():
        np.testing.assert_array_equal(past, current)


def test_load_rejects_newer_and_corrupted_files(twin_after_two, tmp_path):
    twin = twin_after_two["twin"]
    path = tmp_path / "p.tdtwin"
    twin.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members["header.json"])

    def write(name, mutate):
        data = dict(members)
        mutate(data)
        out = tmp_path / name
        with zipfile.ZipFile(out, "w") as zf:
            for k, v in data.items():
                zf.writestr(k, v)
        return out

    newer = write("newer.tdtwin", lambda d: d.update(
        {"header.json": json.dumps(header | {"format_version": 99}).encode()}))
    with pytest.raises(InputError, match="newer"):
        Twin.load(newer)
    corrupted = write("bad.tdtwin", lambda d: d.update(
        {"state.json": d["state.json"].replace(b"test-patient", b"other-patient")}))
    with pytest.raises(InputError, match="sha256"):
        Twin.load(corrupted)
    junk = tmp_path / "junk.tdtwin"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="corrupted"):
        Twin.load(junk)


def _rewrite(path, out, mutate, sign_key=None):
    """Copy a twin file with ``mutate(members)`` applied, sha256s recomputed, and the header
    re-signed with ``sign_key`` (HMAC computed here with the hmac module) if given."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members.pop("header.json"))
    mutate(members)
    header["members"] = {k: hashlib.sha256(v).hexdigest() for k, v in members.items()}
    if sign_key is not None:
        body = {k: v for k, v in header.items() if k != "integrity"}
        header["integrity"]["mac"] = hmac.new(sign_key, json.dumps(
            body, sort_keys=True, separators=(",", ":")).encode(), hashlib.sha256).hexdigest()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("header.json", json.dumps(header))
        for k, v in members.items():
            zf.writestr(k, v)
    return out


def test_edited_twin_with_recomputed_hashes_is_refused(twin_after_two, tmp_path):
    twin = twin_after_two["twin"]
    path = tmp_path / "p.tdtwin"
    twin.save(path)
    assert twin.audit.entries[-1]["payload"]["file_mac"] == json.loads(
        zipfile.ZipFile(path).read("header.json"))["integrity"]["mac"]

    def edit_state(members):  # the case: kidney mass 290 -> 29 g, sha256 recomputed
        state = json.loads(members["state.json"])
        state["record"]["organ_masses_g"]["kidneys"] = 29.0
        state["settings"]["calibration_sd"] = 0.5
        members["state.json"] = json.dumps(state, sort_keys=True).encode()

    edited = _rewrite(path, tmp_path / "edited.tdtwin", edit_state)
    with pytest.raises(InputError, match="edited.tdtwin: its HMAC-SHA256 does not match"):
        Twin.load(edited)
    # signed with another installation's key: refused, and the message says so
    foreign = _rewrite(path, tmp_path / "foreign.tdtwin", edit_state, sign_key=b"k" * 32)
    with pytest.raises(InputError, match="another installation's key|does not match"):
        Twin.load(foreign)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "state_not_json",
                                    "state_missing_keys", "arrays_not_netcdf", "audit_garbage"])
def test_malformed_twin_files_give_one_input_error(twin_after_two, tmp_path, damage):
    twin = twin_after_two["twin"]
    path = tmp_path / "p.tdtwin"
    twin.save(path)
    key = bytes.fromhex(open(os.environ["TDT_HMAC_KEY_FILE"]).read().strip())
    bad = tmp_path / f"{damage}.tdtwin"
    if damage == "truncated":
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:  # validly signed (as a buggy writer holding the key would) but malformed content
        member, content = {
            "state_not_json": ("state.json", b"{not json"),
            "state_missing_keys": ("state.json", b'{"record": {}}'),
            "arrays_not_netcdf": ("arrays.nc", b"CDF\x01 truncated"),
            "audit_garbage": ("audit.jsonl", b"[1, 2]\n"),
        }[damage]
        _rewrite(path, bad, lambda m: m.update({member: content}), sign_key=key)
    with pytest.raises(InputError, match=f"{damage}.tdtwin"):
        Twin.load(bad)


def test_twin_input_errors(model):
    with pytest.raises(InputError, match="record"):
        Twin("patient")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="model"):
        Twin(RECORD, model="nonsense")
    with pytest.raises(InputError, match="times_h"):
        CycleData(7400.0, {"kidneys": ([24.0, 4.0], [1.0, 2.0])})
    with pytest.raises(InputError, match="lesions"):
        PatientRecord(lesions={"tumour": 3.0})
    twin = Twin(RECORD, model=model, n_draws=50)
    with pytest.raises(InputError, match="not in the model"):
        twin.assimilate(CycleData(7400.0, {"bladder": ([4.0, 24.0, 96.0], [1.0, 2.0, 1.0])}))


@pytest.mark.slow
def test_laplace_agrees_with_nuts(model):
    """Second method: NUTS (tdt.inference) on the same data, prior and measurement model."""
    from tdt.twin._assimilate import assimilate_nuts

    rng = np.random.default_rng(1)
    prior = GaussianPosterior.from_model_priors(model)
    cycle = simulate_cycle(model, draw_truth(model, rng, scale=0.5), 7400.0, rng)
    laplace = assimilate_laplace(model, prior, cycle)
    nuts = assimilate_nuts(model, prior, cycle, draws=500, chains=2, tune=500)
    assert np.all(np.abs(laplace.mean - nuts.mean) / nuts.sd_log < 0.35)
    ratio = laplace.sd_log / nuts.sd_log
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio


def test_prior_from_inference_twin_model(model):
    """A population prior given as a tdt.inference TwinModel becomes the twin's Gaussian prior."""
    inference = pytest.importorskip("tdt.inference")
    base = GaussianPosterior.from_model_priors(model)
    cov = np.diag(base.sd_log**2) * 0.25 + 0.01
    tm = inference.custom_model(model).with_prior(base.mean + 0.1, cov)
    prior = GaussianPosterior.from_twin_model(tm)
    np.testing.assert_allclose(prior.mean, base.mean + 0.1)
    np.testing.assert_allclose(prior.cov, cov, rtol=1e-12, atol=1e-15)
    twin = Twin(RECORD, model=model, prior=prior, n_draws=50)
    assert twin.prior.method == "population posterior"


@pytest.mark.slow
def test_plan_resimulated_with_pbpk_solver_and_numerical_bed(model):
    """Re-simulate a plan with tdt.pbpk's matrix-exponential solver (multi-cycle schedule, state
    carried across cycles) and tdt.radiobiology's numerical G-factor: cumulative dose and BED
    must match the planner's closed forms."""
    radiobiology = pytest.importorskip("tdt.radiobiology")
    from tdt.twin import plan as make_plan
    from tdt.twin._response import dose_matrix, response_draws

    rng = np.random.default_rng(21)
    truths = [draw_truth(model, rng, scale=0.5) for _ in range(3)]
    params = {k: np.array([t[k] for t in truths]) for k in truths[0]}
    matrix = dose_matrix(("kidneys", "red_marrow", "lesion_1", "lesion_2"), model.organs, RECORD)
    draws = response_draws(model, params, matrix)
    p = make_plan(draws, 3, constraints=())  # unconstrained: activities at the 9 GBq cap
    x = np.array(p.activities_mbq)
    ev = p.evaluation
    interval = 6 * 7 * 24.0
    schedule = Schedule.repeated(list(x), len(x), interval, ligand_nmol=100.0)
    sources = [model.compartments.index(s) for s in matrix.sources]
    grid = np.concatenate([np.linspace(0.0, 48.0, 481)[1:], np.geomspace(48.2, 3000.0, 300)])
    single = Schedule([Administration(0.0, float(x[0]), 100.0)])
    kidney = matrix.targets.index("kidneys")
    tissue = radiobiology.tissue("kidneys")
    for i, truth in enumerate(truths):
        sim = model.simulate(truth, schedule, np.array([1.0]))
        tia = np.array([np.asarray(sim.tia_mbq_h[model.compartments[j]]) for j in sources])
        np.testing.assert_allclose(matrix.values @ tia, ev.cumulative_dose_gy[i], rtol=1e-6)
        one = model.simulate(truth, single, grid)
        activity = np.stack([np.asarray(one.activity_mbq[model.compartments[j]]) for j in sources])
        rate = matrix.values[kidney] @ activity
        times = np.concatenate([[0.0], grid])
        rate = np.concatenate([[0.0], rate])  # kidneys hold no activity at the bolus instant
        numerical = float(radiobiology.bed(times, rate, tissue.alpha_beta_gy,
                                           tissue.repair_half_time_h, tail="exponential"))
        closed = x[0] * draws.dose_per_mbq[0, i, kidney] + x[0] ** 2 * draws.bed_quadratic[0, i, kidney]
        assert numerical == pytest.approx(closed, rel=2e-3)
