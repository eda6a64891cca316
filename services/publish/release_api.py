"""Public side of anonymized releases: the 個人情報ファイル簿, and the partner download.

A partner release is served only to its applicant's key; any other caller -- anonymous, a
developer, another applicant -- gets the same 404 as a missing dataset. Every download is audited.
"""

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import select

from cityos.domain.access import CallerKind
from cityos.domain.audit import record_audit
from cityos.kernel.db.release_models import Release
from services.publish.context import NOT_FOUND, ContextDep, SessionDep, caller_of, visible_dataset
from services.publish.responses import PersonalInformationFile

router = APIRouter(tags=["anonymized releases"])


@router.get(
    "/api/v1/personal-information-files",
    summary="個人情報ファイル簿: personal datasets, their items, proposal calls and release 概要",
    response_model=list[PersonalInformationFile],
)
def personal_information_files(session: SessionDep) -> list[PersonalInformationFile]:
    # The anonymization modules bring pandas (~60 MB with pyarrow), which no other publish route
    # needs: loaded on the register's first request rather than in every process at start.
    from cityos.domain.anonymize.proposals import file_register

    return [PersonalInformationFile.model_validate(entry) for entry in file_register(session)]


@router.get(
    "/api/v1/releases/{dataset_id}/download",
    summary="Download a partner release (its applicant's key only)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        404: {"description": "No such release for this key"},
    },
)
def download(request: Request, dataset_id: str, ctx: ContextDep, session: SessionDep) -> Response:
    caller = caller_of(request)
    if caller.kind is not CallerKind.applicant:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    dataset, _ = visible_dataset(session, caller, dataset_id)  # read_access decides, and audits
    release = session.scalar(select(Release).where(Release.dataset_id == dataset.id))
    if release is None:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    with ctx.sessions() as audit_session, audit_session.begin():
        record_audit(
            audit_session,
            actor=caller.principal or "applicant",
            action="release.downloaded",
            subject_kind="release",
            subject_id=release.id,
            detail={"dataset": dataset.id, "key_id": caller.key_id, "sha256": release.sha256},
            at=datetime.now(UTC),
        )
    return Response(
        release.content,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{dataset.id}.csv"',
            "ETag": f'"{release.sha256}"',
        },
    )
