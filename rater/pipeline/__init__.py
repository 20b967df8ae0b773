"""The streaming pipeline, one module per stage (docs/ARCHITECTURE.md draws the flow):

    consume -> decode -> normalise -> lookup -> rate -> debit -> store + deadletter -> commit

flow.py shows one batch's way through the stages on one screen; worker.py runs it in a
consumer-group member.
"""
