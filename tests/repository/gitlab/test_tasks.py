"""The GitLab tasks kept the names they had in repository/tasks.py: messages queued before the move name them so."""

from repository.celery import app
from repository.gitlab.tasks import gitlab_import_task, gitlab_mirror_task


def test_the_tasks_answer_to_their_old_names():
    assert app.tasks["repository.tasks.gitlab_mirror_task"].run == gitlab_mirror_task.run
    assert app.tasks["repository.tasks.gitlab_import_task"].run == gitlab_import_task.run
