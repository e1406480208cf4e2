"""Notebook 08 · Therapy predicted from the pre-therapy PET: PET → plan → SPECT → re-plan.

Source of ``notebooks/08_pretherapy.ipynb``; build it with
``python notebooks/_build.py`` (``--check`` verifies the committed file).
"""

from ._common import SETUP, code, md, parameters


def cells() -> list:
    """The notebook's cells, in order."""
    return [
        md("""
# 08 · Therapy predicted from the pre-therapy PET

The first cycle's activity and peptide amount are decided before any post-therapy SPECT exists.
`tdt.Twin.from_pretherapy` fits the diagnostic ligand's receptor PBPK ([68Ga]Ga-PSMA-11) to the
PET VOIs, carries the shared physiology and receptor densities over to the therapeutic model
([177Lu]Lu-PSMA-617), predicts cycle-1 TIAs, doses and BED with credible intervals, and plans
cycle 1 under the same probabilistic limits as every later cycle. After cycle 1's SPECT,
`twin.assimilate` refits the **joint** model — PET VOIs with the diagnostic ligand and SPECT VOIs
with the therapeutic one, one patient — and the plan is made again.

**Truth is known.** The patient is simulated from the pair's own models (the therapeutic
model's general grid solver for the SPECT and the true doses; the diagnostic model with the same
shared parameters for the PET; lognormal VOI noise). Questions: how accurate is the prediction
with 1, 2 or 3 PET time points, and how much does the first SPECT add?
"""),
        parameters("""
pair = "psma11_psma617"           # theranostic pair (tdt.pbpk.pair_names())
pet_protocols = [[1.0], [1.0, 2.0], [1.0, 2.0, 3.0]]   # PET times (h after the 68Ga injection)
spect_times_h = [24.0, 96.0, 168.0]   # cycle-1 SPECT times (h after the 177Lu injection)
noise_sd = 0.1                    # relative VOI noise (lognormal), PET and SPECT
patient_sd = 0.3                  # log-SD of the simulated patient's deviation from the median
draws = 800                       # NUTS draws per chain (PET fit and joint fit); the gate
tune = 500                        # the gate needs bulk ESS >= 400 (2 x 300 draws gave 277)
chains = 2
n_draws = 200                     # posterior draws used for predictions and plans
"""),
        code(SETUP),
        code("""
import jax.numpy as jnp
import pandas as pd

from tdt.inference import OrganSeries, PatientData, with_draws
from tdt.pbpk import get_pair
from tdt.twin import CycleData, Twin

VOIS = ("kidneys", "salivary_glands", "liver", "lesion_1")
REPORT = ("kidneys", "salivary_glands", "red_marrow", "lesion_1")
lesion_ml = 8.0
the_pair = get_pair(pair)
diag, ther = the_pair.build(lesions=("lesion_1",), method="grid")
rng = np.random.default_rng(seed)
truth = {k: float(v) for k, v in ther.default_params().items()}
for name in ("R_kidneys", "R_salivary_glands", "R_liver", "R_lesion_1", "GFR",
             "krel_kidneys", "krel_lesion_1"):
    truth[name] *= float(np.exp(patient_sd * rng.standard_normal()))
truth["V_lesion_1"], truth["Q_lesion_1"] = lesion_ml, 0.5 * 60.0 * lesion_ml  # PyCNO flow/mL
therapy = the_pair.therapy_schedule()


def pet_data(times):
    sim = diag.simulate(the_pair.diagnostic_params(truth, diag, ther),
                        the_pair.diagnostic_schedule(), jnp.asarray(times))
    noise = np.random.default_rng([seed, len(times)])
    organs = {o: OrganSeries(times, np.asarray(sim.activity_mbq[o]) * np.exp(
        noise_sd * noise.standard_normal(len(times))),
        volume_ml=lesion_ml if o == "lesion_1" else None,
        recovery=1.0 if o == "lesion_1" else None) for o in VOIS}
    return PatientData(organs, administered_activity_mbq=the_pair.diagnostic_activity_mbq,
                       ligand_nmol=the_pair.diagnostic_ligand_nmol, nuclide=diag.nuclide,
                       patient_id="simulated-pretherapy")
"""),
        md("""
## 1 · Cycle 1 predicted from the PET alone: 1, 2 or 3 PET time points

One twin per PET protocol (`Twin.from_pretherapy`, NUTS on the PET VOIs). The true cycle-1
doses come from the true parameters through the same dosimetry (`with_draws`: the prediction's
model with the one true draw). No bladder-contents source, as in the twin's later predictions.
"""),
        code("""
twins, rows = {}, []
for times in pet_protocols:
    label = f"PET {len(times)} tp"
    twins[label] = twin = Twin.from_pretherapy(
        pet_data(np.asarray(times)), pair=the_pair, n_draws=n_draws, total_cycles=4, seed=seed,
        nuts_options={"draws": draws, "tune": tune, "chains": chains})
    post = twin.pet_prediction
    true_log = np.log([truth[n] for n in post.twin.sampled])[None, :]
    true_dose = with_draws(post, true_log).predict_doses(
        therapy, radiobiology=False, void_interval_h=None).dose_gy
    pred = twin.predict(therapy).cycles[0].dose_gy
    for organ in REPORT:
        lo, med, hi = np.percentile(pred[organ], [5, 50, 95])
        t = float(true_dose[organ][0])
        rows.append({"protocol": label, "organ": organ, "true Gy": t, "median Gy": med,
                     "ci90 low": lo, "ci90 high": hi, "covered": lo <= t <= hi,
                     "|error| %": 100 * abs(med - t) / t, "ci90 width %": 100 * (hi - lo) / t,
                     "converged": post.converged})
accuracy = pd.DataFrame(rows)
accuracy.round(2)
"""),
        md("""
## 2 · Plan cycle 1 from the PET, give it, image it, assimilate (PET stays in), re-plan
"""),
        code("""
label = f"PET {len(pet_protocols[-1])} tp"
twin = twins[label]
plan1 = twin.plan(n_cycles=4)
print("cycle-1 plan from the PET:", plan1.activities_mbq[0], "MBq,", plan1.ligand_nmol[0], "nmol")
before = twin.predict(therapy).cycles[0].dose_gy
# cycle 1 is given as the pair's standard (7.4 GBq, 150 nmol) and imaged by SPECT
times = np.asarray(spect_times_h)
sim = ther.simulate(truth, therapy, jnp.asarray(times))
noise = np.random.default_rng([seed, 99])
cycle1 = CycleData(float(therapy.activity_mbq[0]),
                   {o: (times, np.asarray(sim.activity_mbq[o])
                        * np.exp(noise_sd * noise.standard_normal(times.size))) for o in VOIS},
                   relative_sd=noise_sd)
report = twin.assimilate(cycle1)
after = twin.predict([float(therapy.activity_mbq[0])]).cycles[0].dose_gy  # cycle 1, delivered
plan2 = twin.plan()
print("re-plan after the SPECT:", plan2.activities_mbq, "MBq per remaining cycle,",
      plan2.ligand_nmol, "nmol")
post = twins[label].pet_prediction
true_dose = with_draws(post, np.log([truth[n] for n in post.twin.sampled])[None, :]
                       ).predict_doses(therapy, radiobiology=False, void_interval_h=None).dose_gy
added = []
for organ in REPORT:
    b, a = (np.percentile(x[organ], [5, 50, 95]) for x in (before, after))
    t = float(true_dose[organ][0])
    added.append({"organ": organ, "true Gy": t, "PET median": b[1], "PET ci90 width %":
                  100 * (b[2] - b[0]) / t, "PET+SPECT median": a[1],
                  "PET+SPECT ci90 width %": 100 * (a[2] - a[0]) / t,
                  "PET+SPECT covered": a[0] <= t <= a[2]})
spect_adds = pd.DataFrame(added)
spect_adds.round(2)
"""),
        code("""
fig, axes = plt.subplots(1, len(REPORT), figsize=(4 * len(REPORT), 3.6), layout="constrained")
flag = {True: "", False: " (NOT CONVERGED)"}  # a failed convergence gate is shown as such
labels = [*(f"{k}{flag[t.pet_prediction.converged]}" for k, t in twins.items()),
          f"PET + SPECT{flag[twin.nuts_posterior.converged]}"]
for ax, organ in zip(axes, REPORT):
    sub = accuracy[accuracy.organ == organ]
    values = [*((r["median Gy"], r["ci90 low"], r["ci90 high"]) for _, r in sub.iterrows()),
              tuple(np.percentile(after[organ], [50, 5, 95]))]
    for i, (med, lo, hi) in enumerate(values):
        ax.errorbar(i, med, yerr=[[med - lo], [hi - med]], fmt="o", capsize=4,
                    color="C1" if i == len(values) - 1 else "C0")
    ax.axhline(float(sub["true Gy"].iloc[0]), color="k", ls="--", lw=1, label="truth")
    ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize="small")
    ax.set_title(f"{organ}: cycle-1 dose (90 % CrI)", fontsize="small")
    ax.set_ylabel("Gy")
axes[0].legend(fontsize="small")
fig.suptitle("177Lu-PSMA-617 cycle-1 dose predicted from the 68Ga-PSMA-11 PET, and after the SPECT")
"""),
        code("""
summary = {
    "pair": pair, "pet_protocols": pet_protocols, "truth": truth,
    "accuracy": accuracy.to_dict(orient="records"),
    "spect_adds": spect_adds.to_dict(orient="records"),
    "plan_from_pet": {"activity_mbq": plan1.activities_mbq[0], "ligand_nmol": plan1.ligand_nmol[0]},
    "replan_after_spect": {"activities_mbq": list(plan2.activities_mbq),
                           "ligand_nmol": list(plan2.ligand_nmol)},
    "qa_cycle1": report.to_dict(),
}
if SAVE:
    results.save_json("pretherapy_prediction", summary, output_dir)
    results.save_figure("pretherapy_prediction", fig, output_dir)
    for name, t in twins.items():
        results.record_convergence(f"pet_fit_{name.replace(' ', '_')}",
                                   t.pet_prediction.converged)
    results.record_convergence("joint_pet_spect_fit", twin.nuts_posterior.converged)
accuracy.groupby("protocol")[["|error| %", "ci90 width %"]].median().round(1)
"""),
    ]
