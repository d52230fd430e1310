"""The leaderboard web app (Streamlit + Plotly, read-only); entry point: ``dashboard/app.py``."""
