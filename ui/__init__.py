"""Streamlit helpers shared by app.py and the pages: cached database, dataset picker, job progress."""
