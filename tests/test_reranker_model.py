"""Footnote's own reranker: the distilled six-layer model, the `reranker` setting that picks it or
the 12-layer teacher, and `make train-reranker` end to end (train, resume, export, load)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa.errors import ConfigError
from qa.pipeline import Pipeline
from qa.search.rerank import SHIPPED, TEACHER, CrossEncoder, bundled_folder, folder_for
from tests.conftest import ROOT, make_target, script

TRAIN = ROOT.parent / "shared" / "train" / "squad_v1.0_train.json"
QUESTION = "Who first lit the Point Morrow lighthouse?"
TEXTS = [
    "Sea otters use stones to open shellfish.",
    "The Point Morrow lighthouse was first lit on 12 March 1871 by keeper Ada Lindqvist.",
    "The light was automated in 1968.",
    "Its Fresnel lens was made in Paris and shipped around Cape Horn.",
]


def test_the_setting_names_footnotes_own_the_teacher_or_a_folder(tmp_path: Path):
    assert folder_for("") == SHIPPED
    assert folder_for(TEACHER) == bundled_folder()
    assert folder_for(str(SHIPPED)) == SHIPPED
    with pytest.raises(ConfigError, match=r"model\.onnx.*reranker setting is '.*nowhere'"):
        folder_for(str(tmp_path / "nowhere"))


def test_the_pipeline_loads_the_reranker_its_setting_names(tmp_path: Path):
    own = Pipeline({"index": str(tmp_path / "a")}).models.cross_encoder()
    teacher = Pipeline({"index": str(tmp_path / "b"), "reranker": TEACHER}).models.cross_encoder()
    assert own.folder == SHIPPED and teacher.folder == bundled_folder()


def test_the_shipped_student_ranks_as_its_teacher_on_the_teachers_scale():
    own, teacher = CrossEncoder(), CrossEncoder(bundled_folder())
    mine, theirs = own.score(QUESTION, TEXTS), teacher.score(QUESTION, TEXTS)
    assert int(np.argmax(mine)) == int(np.argmax(theirs)) == 1
    # the logits themselves were learnt, not only their order: RERANK_SURE and the calibration stand
    assert mine[1] > 4.0 and mine[0] < -4.0


def test_the_teachers_int8_graph_maps_onto_bert_weight_for_weight():
    """All twelve layers mapped back give the teacher's own logits (up to int8 activations)."""
    torch = pytest.importorskip("torch")
    student = script("train_reranker").student
    from qa.models.batches import feed

    teacher = CrossEncoder(bundled_folder())
    model = student(list(range(12))).eval()
    with torch.no_grad():
        inputs = {k: torch.from_numpy(v) for k, v in feed(teacher.encode(QUESTION, TEXTS)).items()}
        logits = model(**inputs).logits[:, 0].numpy()
    assert np.allclose(logits, teacher.score(QUESTION, TEXTS), atol=0.3)


@pytest.mark.slow
@pytest.mark.skipif(not TRAIN.is_file(), reason="../shared/train (SQuAD 1.0 train) is not here")
def test_make_train_reranker_trains_resumes_exports_and_loads(tmp_path: Path):
    out, cache = tmp_path / "reranker", tmp_path / "cache"
    args = (f"--articles 2 --questions 30 --validation-articles 1 --validation-questions 20 --max-steps 6 "
            f"--out {out} --cache {cache}")

    first = make_target("train-reranker", args + " --stop-after 3")
    assert "stopped at step 3/6" in first and "the teacher scores 30 questions" in first and not out.exists()
    assert len(list(cache.glob("reranker-*.pt"))) == 1
    second = make_target("train-reranker", args)
    assert "resumed from" in second and "at step 3/6" in second
    assert "the teacher scores" not in second  # the pairs and the teacher's scores were kept
    card = json.loads((out / "model_card.json").read_text())
    assert card["steps"] == 6 and card["pairs"] == 30 * 8 and card["validation_int8"]["questions"] == 20
    assert (out / "MODEL_CARD.md").read_text().count(card["sha256"]) == 1
    model = CrossEncoder(out)
    assert np.isfinite(model.score(QUESTION, TEXTS)).all()
