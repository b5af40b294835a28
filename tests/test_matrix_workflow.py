"""The matrix's rules (workflow/rules/matrix*.smk): its jobs, the split files it reads, its config checks."""

import pytest

from conftest import job_counts, snakemake, write_config


def dry_run(tmp_path, mutate, *targets):
    path = write_config(tmp_path, mutate)
    return snakemake(*targets, "-n", "--forceall", "--cores", 2, "--configfile", path, "-p")


def test_the_mini_matrix_has_one_job_per_dataset_and_one_table(tmp_path):
    proc = dry_run(tmp_path, lambda c: None, "matrix")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert {k: v for k, v in counts.items() if k.startswith("matrix_")} == {
        "matrix_colored_mnist": 1, "matrix_fairface": 1, "matrix_waterbirds": 1, "matrix_coco": 1, "matrix_table": 1}


@pytest.mark.parametrize("per_job", ["all", 1])
def test_the_fairface_column_reads_its_own_share_even_where_the_table_has_no_such_share(tmp_path, per_job):
    """matrix.datasets.fairface.share need not be a share of the FairFace table: its split job writes it too."""
    def mutate(c):
        c["reweighting"]["fairface"]["shares"] = [0.6, 0.91]
        c["reweighting"]["shares_per_job"] = per_job
        c["matrix"]["datasets"]["fairface"]["share"] = 0.8
    proc = dry_run(tmp_path, mutate, "matrix")
    assert proc.returncode == 0, proc.stderr[-3000:]
    split = tmp_path / "results/prepared/fairface/share=0.800.pt"
    assert f"output: {split}" in proc.stdout or f"{split}," in proc.stdout, proc.stdout[-3000:]
    # a job per share: only the split the matrix reads is made for its target; one job for all: it writes every share
    assert ("share=0.600" in proc.stdout) == (per_job == "all")


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["matrix"]["datasets"]["fairface"].pop("share"),
     "config key matrix.datasets.fairface.inputs.split: '{results}/prepared/fairface/share={share}.pt' names {share} "
     "but the entry has no share"),
    (lambda c: c["matrix"]["datasets"]["waterbirds"].update(share=0.9),
     "config key matrix.datasets.waterbirds.share: only a reweighting dataset"),
])
def test_a_share_is_checked_against_the_inputs_and_the_dataset(tmp_path, mutate, message):
    proc = dry_run(tmp_path, mutate, "matrix")
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_a_dataset_whose_section_the_config_lacks_is_left_out_of_the_matrix_with_a_warning(tmp_path):
    proc = dry_run(tmp_path, lambda c: c.pop("coco"), "matrix")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "matrix_coco" not in job_counts(proc.stdout) and job_counts(proc.stdout)["matrix_waterbirds"] == 1
    assert ("WARNING: config key matrix.datasets.coco: left out of the matrix, the config has no 'coco' section"
            in proc.stderr)
