"""Prediction routes: one row, a batch of rows, and what model answers them."""

from datetime import datetime
from uuid import uuid4

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import PredictorDep, SettingsDep
from app.api.errors import ERROR_RESPONSES
from app.errors import BatchTooLarge
from app.model import ClassPrediction, FeatureSpec
from app.schemas import (
    BatchPredictionResponse,
    BatchRequest,
    Features,
    Prediction,
    PredictionResponse,
)

router = APIRouter(prefix="/v1", tags=["predictions"])


class ModelInfo(BaseModel):
    """The loaded model artifact, as recorded when it was trained."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str
    task: str
    target: str = Field(description="Name of the predicted column in the training data.")
    features: list[FeatureSpec] = Field(description="Input columns, in training order.")
    classes: list[str]
    metrics: dict[str, float] = Field(description="Scores on the held-out test split.")
    trained_at: datetime
    library_versions: dict[str, str]
    model_sha256: str
    training_data_sha256: str


def _prediction_fields(result: ClassPrediction) -> dict[str, object]:
    return {
        "prediction_id": uuid4().hex,
        "label": result.label,
        "probability": result.probability,
        "probabilities": result.probabilities,
    }


@router.post("/predict", responses=ERROR_RESPONSES, summary="Predict one row")
async def predict(features: Features, predictor: PredictorDep) -> PredictionResponse:
    [result] = predictor.predict([features.model_dump()])
    return PredictionResponse.model_validate(
        {**_prediction_fields(result), "model_version": predictor.version}
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
    results = predictor.predict([row.model_dump() for row in batch.rows])
    return BatchPredictionResponse(
        model_version=predictor.version,
        predictions=[Prediction.model_validate(_prediction_fields(result)) for result in results],
    )


@router.get("/model", responses=ERROR_RESPONSES, summary="Describe the loaded model")
async def model_info(predictor: PredictorDep) -> ModelInfo:
    return ModelInfo.model_validate(predictor.metadata.model_dump())
