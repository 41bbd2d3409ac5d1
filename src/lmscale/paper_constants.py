"""The paper's constants (Gadre et al. 2024, PAPER.md), named once: its downstream task lists and
error targets, its training sets and their names, the headline configuration of Figure 1, its
multiplier range and its model shapes. Everything that means "as in the paper" reads them from here.
Plain data, no imports: every layer may use it."""

from __future__ import annotations

#: The paper's 46 downstream tasks.
PAPER_46 = (
    "agi_eval_lsat_ar",
    "agi_eval_lsat_rc",
    "agi_eval_lsat_lr",
    "agi_eval_sat_en",
    "arc_easy",
    "arc_challenge",
    "bbq",
    "bigbench_conceptual_combinations",
    "bigbench_conlang_translation",
    "bigbench_cs_algorithms",
    "bigbench_dyck_languages",
    "bigbench_elementary_math_qa",
    "bigbench_misconceptions",
    "bigbench_language_identification",
    "bigbench_logical_deduction",
    "bigbench_novel_concepts",
    "bigbench_operators",
    "bigbench_repeat_copy_logic",
    "bigbench_qa_wikidata",
    "bigbench_strange_stories",
    "bigbench_strategy_qa",
    "bigbench_understanding_fables",
    "boolq",
    "commonsense_qa",
    "copa",
    "coqa",
    "enterprise_pii_classification",
    "hellaswag",
    "hellaswag_zeroshot",
    "jeopardy",
    "lambada_openai",
    "logi_qa",
    "math_qa",
    "mmlu",
    "mmlu_zeroshot",
    "openbook_qa",
    "piqa",
    "pubmed_qa_labeled",
    "simple_arithmetic_nospaces",
    "simple_arithmetic_withspaces",
    "siqa",
    "squad",
    "winogender_mc_female",
    "winogender_mc_male",
    "winograd",
    "winogrande",
)

#: The paper's 17-task subset: tasks where some 0.154B run is >= 10 points above chance.
PAPER_17 = (
    "arc_easy",
    "bigbench_cs_algorithms",
    "bigbench_dyck_languages",
    "bigbench_novel_concepts",
    "bigbench_operators",
    "bigbench_qa_wikidata",
    "boolq",
    "commonsense_qa",
    "copa",
    "coqa",
    "hellaswag",
    "hellaswag_zeroshot",
    "lambada_openai",
    "piqa",
    "pubmed_qa_labeled",
    "squad",
    "winograd",
)

#: Error targets of the paper: 46-task and 17-task average top-1 error.
ERROR_TARGETS = ("error_46", "error_17")

#: N of the paper's 0.154B shape, the reference size of the above-chance rule.
PAPER_REFERENCE_N = 153677376

#: The paper's three training sets (testbed names) and how the paper names them.
TRAIN_SET_NAMES = {"c4_original": "C4", "rpj": "RedPajama", "rw_original": "RefinedWeb"}

#: The validation loss of Figure 1, Table 6 and the chained error predictions.
PAPER_VAL_SET = "c4_val"

#: The headline configuration of Figure 1.
FIGURE1 = {"train_set": "rpj", "val_set": PAPER_VAL_SET, "target": "error_17"}

#: The token multipliers the paper trains, M = 5 … 640.
M_RANGE = (5.0, 640.0)

#: The paper's shapes, PAPER.md §6: name → (d_model, layers, heads, batch size, warm-up steps, lr
#: or None for the ladder's).
PAPER_SHAPES = {
    "0.011B": (96, 8, 4, 64, 100, None),
    "0.079B": (512, 8, 4, 512, 400, None),
    "0.154B": (576, 24, 8, 512, 400, None),
    "0.411B": (1024, 24, 8, 512, 2000, None),
    "1.4B": (2048, 24, 16, 256, 5000, None),
    "6.9B": (4096, 32, 32, 2048, 5000, 3e-4),
}
