"""Rule claims: every claim of config/claims.yaml measured on this run's tables -> claims.csv, claims.md, figure."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821  (snakemake is injected)

from debias.jobs import start_job  # noqa: E402

start_job(snakemake)  # noqa: F821

from debias import claims, claims_spec  # noqa: E402

sm = snakemake  # noqa: F821
spec = claims_spec.load(sm.input.claims, Path(sm.scriptdir).parent / claims_spec.SCHEMA_FILE, sm.config)
claims.write(spec, list(sm.input.tables), sm.params.scale, sm.output.csv, sm.output.md, [sm.output.png, sm.output.pdf],
             runs={k: list(v) for k, v in sm.params.runs.items()}, n_fill=dict(sm.params.n_fill))
