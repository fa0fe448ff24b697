# LLM track: registry resources -> harvest through TransformerLens hooks -> train a family ->
# evaluate it (activation metrics, CE / KL with the SAE spliced in).
# Everything is keyed by the (model, hook) pair of the config's `llm` section.
import os

# Resources are a cache of the checkout: a relative resources_dir is taken from the Snakefile's
# folder, so runs in other working directories (-d, the tests) share one download.
RES = config["resources_dir"]
if not os.path.isabs(RES):
    RES = str(Path(workflow.basedir) / RES)
LLM = config.get("llm")
LLM_RUN_DIRS = []
LLM_BENCHMARKS = []
LLM_ARTEFACTS = []

if LLM:
    LLM_MODEL = LLM["model"]
    LLM_HOOK = LLM["hook"]
    LLM_DIR = f"results/llm/{LLM_MODEL}/{LLM_HOOK}"
    LLM_FAMILIES = list(LLM["families"])
    LLM_RUN_DIRS = [f"{LLM_DIR}/runs/{f}" for f in LLM_FAMILIES]
    LLM_STREAMED = LLM["harvest"].get("train_storage", "disk") == "stream"
    LLM_BENCHMARKS = [f"benchmarks/llm/{LLM_MODEL}/{LLM_HOOK}/train_{f}.tsv" for f in LLM_FAMILIES]
    if LLM_STREAMED:
        # parallel to LLM_RUN_DIRS: the one job that trained every family
        LLM_BENCHMARKS = [f"benchmarks/llm/{LLM_MODEL}/{LLM_HOOK}/train_streamed.tsv"] * len(LLM_FAMILIES)
    # what the harvest reads: model, hook, corpus and the harvest settings (not the SAEs' settings)
    LLM_HARVEST = {"model": LLM_MODEL, "hook": LLM_HOOK, "corpus": LLM.get("corpus", "packaged"),
                   "harvest": {**LLM["harvest"], "train_storage": "stream" if LLM_STREAMED else "disk",
                               "stats_split": LLM["harvest"].get("stats_split", "eval" if LLM_STREAMED else "train")}}
    LLM_ARTEFACTS = [f"{RES}/corpus/manifest.json", f"{LLM_DIR}/acts/manifest.json"]
    if LLM["eval"]["crosscheck_saelens"]:
        LLM_ARTEFACTS.append(f"{LLM_DIR}/crosscheck_saelens.json")

    rule llm_model_smollm2:
        output:
            gguf=f"{RES}/models/smollm2-135m/model.gguf",
            hf=directory(f"{RES}/models/smollm2-135m/hf"),
            info=f"{RES}/models/smollm2-135m/info.json",
        params:
            downloads=f"{RES}/downloads",
        priority: 50
        log:
            "logs/llm/model_smollm2.log",
        benchmark:
            "benchmarks/llm/model_smollm2.tsv"
        conda:
            "../../environment.yml"
        script:
            "../scripts/llm_model.py"

    rule llm_corpus_source:
        output:
            jsonl=f"{RES}/corpus/{{source}}.jsonl",
            entry=f"{RES}/corpus/{{source}}.source.json",
        wildcard_constraints:
            source="shakespeare|brown|sotu",
        params:
            downloads=f"{RES}/downloads",
        priority: 50
        log:
            "logs/llm/corpus_{source}.log",
        conda:
            "../../environment.yml"
        script:
            "../scripts/llm_corpus_source.py"

    rule llm_corpus:
        input:
            entries=expand(f"{RES}/corpus/{{source}}.source.json", source=["shakespeare", "brown", "sotu"]),
            model=f"{RES}/models/smollm2-135m/info.json",
        output:
            manifest=f"{RES}/corpus/manifest.json",
        params:
            hf_dir=f"{RES}/models/smollm2-135m/hf",
        priority: 50
        log:
            "logs/llm/corpus.log",
        conda:
            "../../environment.yml"
        script:
            "../scripts/llm_corpus.py"

    rule llm_harvest:
        input:
            model=llm_model_inputs,
            corpus=llm_corpus_inputs,
        output:
            # shards sit next to the manifest and are not declared, so that Snakemake does not
            # delete them when a killed harvest is rerun: the rerun resumes at shard level
            manifest=f"{LLM_DIR}/acts/manifest.json",
        params:
            llm=LLM_HARVEST,
            resources_dir=RES,
            device=config["device"],
            # aenbench.llm.harvest.MANIFEST_FORMAT: a harvest of an older format is refused by its
            # readers, so a change of format reruns this rule (Snakemake's params trigger)
            harvest_format=2,
        priority: 50
        log:
            f"logs/llm/{LLM_MODEL}/{LLM_HOOK}/harvest.log",
        benchmark:
            f"benchmarks/llm/{LLM_MODEL}/{LLM_HOOK}/harvest.tsv"
        threads: 1
        conda:
            "../../environment.yml"
        script:
            "../scripts/llm_harvest.py"

    if not LLM_STREAMED:

        rule llm_train:
            input:
                manifest=f"{LLM_DIR}/acts/manifest.json",
            output:
                trained=directory(f"{LLM_DIR}/trained/{{family}}"),
            wildcard_constraints:
                family="|".join(re.escape(f) for f in LLM_FAMILIES),
            params:
                family=lambda w: LLM["families"][w.family],
                runs=lambda w: llm_family_runs(w.family),
                train=train_settings(LLM["train"]),
                width=LLM["width"],
                arch_defaults=lambda w: arch_defaults_for(LLM["families"][w.family], LLM.get("arch_defaults") or {}),
                device=config["device"],
            log:
                f"logs/llm/{LLM_MODEL}/{LLM_HOOK}/train_{{family}}.log",
            benchmark:
                f"benchmarks/llm/{LLM_MODEL}/{LLM_HOOK}/train_{{family}}.tsv"
            threads: 1
            resources:
                mem_mb=4000,
            conda:
                "../../environment.yml"
            script:
                "../scripts/llm_train.py"

    else:

        rule llm_train_streamed:
            # streaming mode: every family of the grid in one job, trained in lockstep from one
            # stream of the model's activations (no train activation on disk)
            input:
                manifest=f"{LLM_DIR}/acts/manifest.json",
                model=llm_model_inputs,
            output:
                trained=[directory(f"{LLM_DIR}/trained/{f}") for f in LLM_FAMILIES],
            params:
                families={f: LLM["families"][f] for f in LLM_FAMILIES},
                runs={f: llm_family_runs(f) for f in LLM_FAMILIES},
                train=train_settings(LLM["train"]),
                width=LLM["width"],
                arch_defaults={f: arch_defaults_for(LLM["families"][f], LLM.get("arch_defaults") or {})
                               for f in LLM_FAMILIES},
                resources_dir=RES,
                device=config["device"],
            log:
                f"logs/llm/{LLM_MODEL}/{LLM_HOOK}/train_streamed.log",
            benchmark:
                f"benchmarks/llm/{LLM_MODEL}/{LLM_HOOK}/train_streamed.tsv"
            threads: 1
            resources:
                mem_mb=8000,
            conda:
                "../../environment.yml"
            script:
                "../scripts/llm_stream_train.py"

    rule llm_eval:
        input:
            manifest=f"{LLM_DIR}/acts/manifest.json",
            trained=f"{LLM_DIR}/trained/{{family}}",
            model=llm_model_inputs,
        output:
            runs=directory(f"{LLM_DIR}/runs/{{family}}"),
        wildcard_constraints:
            family="|".join(re.escape(f) for f in LLM_FAMILIES),
        params:
            evaluation={k: v for k, v in LLM["eval"].items() if k != "crosscheck_saelens"},
            resources_dir=RES,
            device=config["device"],
        log:
            f"logs/llm/{LLM_MODEL}/{LLM_HOOK}/eval_{{family}}.log",
        benchmark:
            f"benchmarks/llm/{LLM_MODEL}/{LLM_HOOK}/eval_{{family}}.tsv"
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            "../../environment.yml"
        script:
            "../scripts/llm_eval.py"

    rule llm_crosscheck_saelens:
        input:
            manifest=f"{LLM_DIR}/acts/manifest.json",
            runs=LLM_RUN_DIRS[0],
        output:
            json=f"{LLM_DIR}/crosscheck_saelens.json",
        params:
            resources_dir=RES,
            n_contexts=min(8, LLM["eval"]["ce_contexts"]),
            device=config["device"],
        log:
            f"logs/llm/{LLM_MODEL}/{LLM_HOOK}/crosscheck_saelens.log",
        conda:
            "../../environment.yml"
        script:
            "../scripts/llm_crosscheck.py"

    rule figure_llm_dead_ev_vs_l0:
        input:
            leaderboard="results/leaderboard.csv",
        output:
            png=report(
                "figures/llm_dead_ev_vs_l0.png",
                caption="../report/llm_dead_ev_vs_l0.rst",
                category="LLM",
            ),
        log:
            "logs/figures/llm_dead_ev_vs_l0.log",
        conda:
            "../../environment.yml"
        script:
            "../scripts/figure_llm_dead_ev_vs_l0.py"

    rule table_llm_target_l0:
        input:
            leaderboard="results/leaderboard.csv",
        output:
            csv="figures/tables/llm_target_l0.csv",
            md="figures/tables/llm_target_l0.md",
        params:
            targets=config["figures"]["llm_target_l0"],
            paper=str(Path(workflow.basedir) / "results" / "reference" / "paper" / "reference_pythia70m.csv"),
        log:
            "logs/figures/llm_target_l0.log",
        conda:
            "../../environment.yml"
        script:
            "../scripts/table_llm_target_l0.py"

    LLM_ARTEFACTS += ["figures/llm_dead_ev_vs_l0.png", "figures/tables/llm_target_l0.csv"]
