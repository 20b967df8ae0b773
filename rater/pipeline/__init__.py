"""The streaming pipeline, one module per stage (docs/ARCHITECTURE.md draws the flow):

    consume -> decode -> normalise -> late -> lookup -> rate -> debit -> store + deadletter
            -> commit

flow.py shows one batch's way through the stages on one screen; worker.py runs it in a
consumer-group member. fates.py decides each CDR's fate and the columns stored with it (shared
with re-rating); isolate.py and guarded.py keep one bad record from stopping a batch.
"""
