"""Video-MME with the benchmark's official prompt (task ``sinktop_videomme``; everything else is lmms-eval's
``videomme``: see its YAML). The wording is a fact of the protocol, kept verbatim so numbers compare:
the instruction, the question, the four options as the dataset writes them ("A. ..."), then
"The best answer is:". The SToP release uses the same wording (with a "." after each option).
"""
from __future__ import annotations

INSTRUCTION = ("Select the best answer to the following multiple-choice question based on the video. "
               "Respond with only the letter (A, B, C, or D) of the correct option.")
ANSWER_PROMPT = "The best answer is:"


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    options = "\n".join(str(option) for option in doc["options"])
    return f"{INSTRUCTION}\n{doc['question']}\n{options}\n{ANSWER_PROMPT}"
