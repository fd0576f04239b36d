"""The ceiling: a minimal Flask app served with the same gunicorn configuration as the real one."""
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello"
