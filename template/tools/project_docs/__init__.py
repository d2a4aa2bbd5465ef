"""The project's generated documentation: docs/MODEL_CARD.md and docs/SERVICE_CONTRACT.md."""
