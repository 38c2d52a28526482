"""One APIRouter per module; api/app.py only wires them."""
