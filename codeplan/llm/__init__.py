"""Text generation behind one small interface; one module per backend.

    generator = load_generator("hf:path/or/id")            # local transformers model, batched
    generator = load_generator("openai:http://host:8000/v1", model="name")   # any OpenAI-compatible server
    texts = generator.generate(["prompt", ...], GenerationParams(n=4, temperature=0.6))
"""

from codeplan.llm.base import Completion, GenerationParams, TextGenerator, load_generator

__all__ = ["Completion", "GenerationParams", "TextGenerator", "load_generator"]
