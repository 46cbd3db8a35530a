"""One folder per engine: runner.py, manifest.yaml, requirements.txt, README.md.

The coordinator discovers engines by scanning this folder; the folder name is the engine id.
"""
