"""WSGI entry point for production servers: ``gunicorn -c gunicorn.conf.py`` (which names
``wsgi:app``). Configuration comes from the environment (see the README); the schema is
migrated beforehand with ``flask --app app db upgrade``, never here."""
from app import create_app

app = create_app()
