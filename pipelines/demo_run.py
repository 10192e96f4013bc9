"""The work of ``mo demo`` (settings and checks in :mod:`pipelines.demo`): organisms, sweeps, promotion, report.

    mo demo
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from mlproject import progress, tracking
from pipelines import demo, insert, insert_run, promote, report, sweep, sweep_run
from pipelines.demo import DemoConfig
from registry import store

# (method, extra insertion settings): the four ways the demo makes an organism.
ORGANISMS: tuple[tuple[str, dict], ...] = (
    ("prompted-static", {}),
    ("prompted-dynamic", {}),
    ("lora", {"rank": 16}),
    ("fwft", {}),
)


def run(cfg: DemoConfig) -> list[dict]:
    """Make, register and sweep the organisms, promote them and print the report; returns the report's rows."""
    demo.check(cfg)
    stages = len(ORGANISMS) * (1 + len(cfg.attack_list)) + 1
    with tracking.run("demo", f"demo {cfg.backdoor}", asdict(cfg)) as parent:
        run_id = parent.info.run_id
        with progress.quiet(), tqdm(total=stages, desc="mo demo", unit="step", disable=False) as bar:
            refs = {}
            for method, extra in ORGANISMS:
                bar.set_postfix_str(f"insert {cfg.backdoor} {method}")
                refs[method] = _insert(cfg, method, extra, Path(cfg.out) / run_id[:8])
                bar.update()
            for method, ref in refs.items():
                for attack in cfg.attack_list:
                    bar.set_postfix_str(f"sweep {method} vs {attack}")
                    sweep_run.run(sweep.SweepConfig(organism=ref, attack=attack, trials=cfg.trials, space=cfg.space,
                                                    eval_size=cfg.eval_size, seed=cfg.seed,
                                                    study=f"demo-{run_id[:8]}-{cfg.backdoor}-{method}-{attack}"))
                    bar.update()
            bar.set_postfix_str("promote")
            # a few trials a sweep show the flow; they do not settle an AUC (the report says which have not
            # converged), so the demo promotes with --allow-unconverged, as a user does knowingly
            changes = promote.run(promote.PromoteConfig(policy="max_auc <= 0.75", alias="robust",
                                                        allow_unconverged=True))
            changes += promote.run(promote.PromoteConfig(policy="champion", alias="champion", allow_unconverged=True))
            bar.update()
        print(f"\nrobustness of the {cfg.backdoor} organisms (demo run {run_id}):")
        rows = report.run(report.ReportConfig(parent=run_id))
        tracking.log_metrics({"demo.organisms": len(refs), "demo.promotions": len(changes)})
    uri = tracking.redact(tracking.tracking_uri())
    print(f"\nregistered: {', '.join(refs.values())}")
    print(f"runs are in {uri}\nlook at them with:  mlflow ui --backend-store-uri {uri}")
    return rows


def _insert(cfg: DemoConfig, method: str, extra: dict, root: Path) -> str:
    """Make and register one organism; returns its registry reference."""
    out = root / method
    insert_run.run(insert.InsertConfig(backdoor=cfg.backdoor, method=method, samples=cfg.samples,
                                       eval_size=cfg.eval_size, seed=cfg.seed, base_model=cfg.model, out=str(out),
                                       **extra))
    return store.registered_for(out)
