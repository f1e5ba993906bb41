"""codeplan: distil the planning skill of a large LLM into a small code model (CodePLAN)."""

__version__ = "0.1.0"
