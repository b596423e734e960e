"""The local web page and its JSON API (``wordgpt serve``).

Needs the serve extra: ``pip install 'wordgpt[serve]'``.
"""
