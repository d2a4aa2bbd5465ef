"""Bringing your own model: what is imported, and every mismatch that is refused."""

import json
from pathlib import Path

import pandas as pd
import pytest
import sklearn
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from app.features import encode_rows
from app.model import METADATA_FILE, ClassPrediction, ValuePrediction, load_service_model
from app.schemas import FEATURES, TARGET, TASK
from app.settings import Settings
from tests.user_models import estimator_for, features_of, saved, target_of, user_pipeline
from training.data import load_dataset
from training.import_model import ImportRefused, import_model, main
from training.train import build_pipeline

ROWS = 200


def test_model_fitted_on_a_dataframe_serves_its_own_answers(
    frame: pd.DataFrame, data: Path, tmp_path: Path
) -> None:
    model = user_pipeline().fit(features_of(frame), target_of(frame))

    artifact = import_model(saved(model, tmp_path), data, tmp_path / "artifacts", "2.0.0")

    metadata = json.loads((artifact / METADATA_FILE).read_text())
    assert metadata["input_format"] == "frame"
    assert metadata["source"]["kind"] == "imported"
    assert "may include rows the model was trained on" in metadata["evaluation"]
    predictor, _ = load_service_model(Settings(model_dir=artifact.parent, model_version="2.0.0"))
    rows = pd.read_csv(data).head(20)
    request_rows = [
        {
            f.name: (None if pd.isna(row[f.source_column]) else row[f.source_column])
            for f in FEATURES
        }
        for _, row in rows.iterrows()
    ]
    served = predictor.predict(request_rows)
    if TASK == "classification":
        expected = model.predict_proba(features_of(rows))
        classes = [str(label) for label in model.classes_]
        for prediction, probabilities in zip(served, expected, strict=True):
            assert isinstance(prediction, ClassPrediction)
            assert prediction.probabilities == pytest.approx(
                dict(zip(classes, probabilities, strict=True))
            )
    else:
        expected = model.predict(features_of(rows))
        assert [p.value for p in served if isinstance(p, ValuePrediction)] == pytest.approx(
            expected.tolist()
        )


def test_model_fitted_on_encoded_rows_is_imported_as_a_matrix_model(
    data: Path, tmp_path: Path
) -> None:
    dataset = load_dataset()
    model = build_pipeline(FEATURES, TASK).fit(
        encode_rows(dataset.rows[:ROWS], FEATURES), dataset.target[:ROWS]
    )

    artifact = import_model(saved(model, tmp_path), data, tmp_path / "artifacts", "2.0.0")

    assert json.loads((artifact / METADATA_FILE).read_text())["input_format"] == "array"


def test_columns_in_another_order_are_refused(
    frame: pd.DataFrame, data: Path, tmp_path: Path
) -> None:
    shuffled = features_of(frame)[features_of(frame).columns[::-1]]
    model = user_pipeline().fit(shuffled, target_of(frame))

    with pytest.raises(ImportRefused, match=r"the same columns in another order"):
        import_model(saved(model, tmp_path), data, tmp_path / "artifacts", "2.0.0")


def test_model_lacking_a_column_is_refused(frame: pd.DataFrame, data: Path, tmp_path: Path) -> None:
    first = FEATURES[0].source_column
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), estimator_for(TASK))
    model.fit(features_of(frame).drop(columns=[first]).astype(str), target_of(frame))

    with pytest.raises(ImportRefused, match=rf"missing \['{first}'\]"):
        import_model(saved(model, tmp_path), data, tmp_path / "artifacts", "2.0.0")


def test_model_for_the_other_task_is_refused(
    frame: pd.DataFrame, data: Path, tmp_path: Path
) -> None:
    other = "regression" if TASK == "classification" else "classification"
    model = user_pipeline(other).fit(features_of(frame), target_of(frame, other))

    with pytest.raises(ImportRefused, match=rf"a {TASK} service needs a"):
        import_model(saved(model, tmp_path), data, tmp_path / "artifacts", "2.0.0")


def test_unfitted_model_is_refused(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match=r"the model is not fitted"):
        import_model(saved(user_pipeline(), tmp_path), data, tmp_path / "artifacts", "2.0.0")


def test_file_that_is_not_a_joblib_file_is_refused(data: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.joblib"
    model.write_bytes(b"not a pickle")

    with pytest.raises(ImportRefused, match=r"cannot be loaded with joblib"):
        import_model(model, data, tmp_path / "artifacts", "2.0.0")


def test_model_saved_by_another_scikit_learn_minor_version_is_refused(
    frame: pd.DataFrame, data: Path, tmp_path: Path
) -> None:
    model = saved(user_pipeline().fit(features_of(frame), target_of(frame)), tmp_path)
    # Every estimator records the version that pickled it; claim an older one.
    older = "0" + sklearn.__version__[1:]
    model.write_bytes(model.read_bytes().replace(sklearn.__version__.encode(), older.encode()))

    with pytest.raises(ImportRefused) as refusal:
        import_model(model, data, tmp_path / "artifacts", "2.0.0")

    assert f"saved with scikit-learn {older} but this service runs {sklearn.__version__}" in str(
        refusal.value
    )
    assert f"pin scikit-learn=={older}" in str(refusal.value)


def test_data_that_does_not_fit_the_schema_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    model = saved(user_pipeline().fit(features_of(frame), target_of(frame)), tmp_path)
    broken = tmp_path / "broken.csv"
    frame.drop(columns=[TARGET]).to_csv(broken, index=False)

    with pytest.raises(ImportRefused, match=rf"lacks column\(s\) \['{TARGET}'\]"):
        import_model(model, broken, tmp_path / "artifacts", "2.0.0")


def test_existing_version_is_refused(
    frame: pd.DataFrame, data: Path, tmp_path: Path, model_dir: Path, model_version: str
) -> None:
    model = saved(user_pipeline().fit(features_of(frame), target_of(frame)), tmp_path)

    with pytest.raises(ImportRefused, match=r"already exists"):
        import_model(model, data, model_dir, model_version)


def test_command_line_reports_a_refusal_in_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--model", str(tmp_path / "missing.joblib"), "--data", str(data)]

    status = main([*arguments, "--model-version", "2.0.0", "--out", str(tmp_path)])

    [line] = capsys.readouterr().out.splitlines()
    assert status == 1
    assert "missing.joblib does not exist" in json.loads(line)["error"]
