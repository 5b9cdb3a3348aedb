"""Chain-of-thought RAG: retrieved history items, think briefly, then answer after 'Answer:'."""

from personalign.methods.rag import RAG


class CoTRAG(RAG):
    cot = True


PLUGIN = CoTRAG
