"""SnapRace: the Chalice switchboard. Each handler unpacks its event and calls one chalicelib function."""

from __future__ import annotations

import logging

from chalice import Chalice

from chalicelib import clients, ingest, pipeline
from chalicelib.config import AppSettings
from chalicelib.errors import NotAnS3Notification

_settings = AppSettings.from_env()

app = Chalice(app_name="snaprace")
app.log.setLevel(_settings.log_level)
logging.getLogger("chalicelib").setLevel(_settings.log_level)


# --- ingest trigger: S3 upload event -> SQS -> one Step Functions execution per raw photo ------


@app.on_sqs_message(
    queue=_settings.queue_name,
    batch_size=1,
    maximum_concurrency=_settings.max_concurrency,
    name="on_upload",
)
def on_upload(event):
    for record in event:
        try:
            result = ingest.ingest_notification(
                record.body, storage=clients.storage(), workflow=clients.workflow()
            )
        except NotAnS3Notification as exc:
            # Retrying cannot fix a foreign message: log it and let SQS delete it.
            app.log.error("dropped message id=%s: %s", _message_id(record), exc)
            continue
        app.log.info("message id=%s %s", _message_id(record), ingest.describe(result))


# --- pipeline steps: Task states of statemachine.json --------------------------------------------


@app.lambda_function(name="preprocess")
def preprocess(event, context):
    return pipeline.preprocess(event, storage=clients.storage(), settings=clients.settings())


@app.lambda_function(name="detect_text")
def detect_text(event, context):
    return pipeline.detect_text(event, rekognition=clients.rekognition(), settings=clients.settings())


@app.lambda_function(name="index_faces")
def index_faces(event, context):
    return pipeline.index_faces(event, rekognition=clients.rekognition(), settings=clients.settings())


@app.lambda_function(name="fanout")
def fanout(event, context):
    return pipeline.fanout(event, table=clients.table())


@app.lambda_function(name="record_failure")
def record_failure(event, context):
    return pipeline.record_failure(event, table=clients.table())


def _message_id(record) -> str:
    return record.to_dict().get("messageId", "?")
