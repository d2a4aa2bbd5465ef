"""Prediction routes: one row, a batch of rows, and what model answers them."""

from dataclasses import asdict
from datetime import datetime
from uuid import uuid4

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import PredictorDep, SettingsDep
from app.api.errors import ERROR_RESPONSES
from app.errors import BatchTooLarge
from app.features import FeatureSpec, InputFormat, Task
from app.model import ModelSource, Predictor
from app.model import Prediction as ModelPrediction
from app.schemas import (
    BatchPredictionResponse,
    BatchRequest,
    Features,
    Prediction,
    PredictionResponse,
)

router = APIRouter(prefix="/v1", tags=["predictions"])


class ModelInfo(BaseModel):
    """The loaded model artifact, as recorded when it was trained or imported."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    task: Task
    target: str = Field(description="Name of the predicted column in the training data.")
    features: list[FeatureSpec] = Field(description="Input columns, in training order.")
    classes: list[str] = Field(description="Labels, for a classifier; the last is positive.")
    decision_threshold: float | None = Field(
        description="Threshold in use for the positive label (binary classifiers)."
    )
    input_format: InputFormat
    metrics: dict[str, float]
    evaluation: str = Field(description="What data the metrics were measured on.")
    source: ModelSource
    trained_at: datetime
    library_versions: dict[str, str]
    model_sha256: str
    training_data_sha256: str


def _fields(result: ModelPrediction) -> dict[str, object]:
    fields: dict[str, object] = {"prediction_id": uuid4().hex}
    fields.update((key, value) for key, value in asdict(result).items() if value is not None)
    return fields


def _predict(predictor: Predictor, rows: list[Features]) -> list[ModelPrediction]:
    return predictor.predict([row.model_dump() for row in rows])


@router.post("/predict", responses=ERROR_RESPONSES, summary="Predict one row")
async def predict(features: Features, predictor: PredictorDep) -> PredictionResponse:
    [result] = _predict(predictor, [features])
    return PredictionResponse.model_validate(
        {**_fields(result), "model_version": predictor.version}
    )


@router.post("/predict/batch", responses=ERROR_RESPONSES, summary="Predict several rows")
async def predict_batch(
    batch: BatchRequest, predictor: PredictorDep, settings: SettingsDep
) -> BatchPredictionResponse:
    if len(batch.rows) > settings.max_batch_size:
        raise BatchTooLarge(
            f"the batch holds {len(batch.rows)} rows; the limit is {settings.max_batch_size} "
            "(APP_MAX_BATCH_SIZE): split it into smaller batches",
            details=[
                {
                    "field": "rows",
                    "message": f"at most {settings.max_batch_size} rows",
                    "type": "too_long",
                }
            ],
        )
    results = _predict(predictor, batch.rows)
    return BatchPredictionResponse(
        model_version=predictor.version,
        predictions=[Prediction.model_validate(_fields(result)) for result in results],
    )


@router.get("/model", responses=ERROR_RESPONSES, summary="Describe the loaded model")
async def model_info(predictor: PredictorDep) -> ModelInfo:
    return ModelInfo.model_validate(
        {**predictor.metadata.model_dump(), "decision_threshold": predictor.threshold}
    )
