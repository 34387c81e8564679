"""The LLM rater behind steps 1 and 2: one async engine, a request journal, two backends.

client.py       one chat completion with the retry policy (aiohttp)
batch.py        many requests at fixed concurrency through the journal, with accounting
breaker.py      when to stop the whole run: the pre-flight request, the circuit breaker
report.py       what a run did and cost (RunReport)
policy.py       the engine's settings: endpoint, sampling, timeouts, retries
journal.py      append-only answer cache keyed by a hash of the request
errors.py       transient / permanent / run-stopping, and what the engine does about each
tasks.py        a task (judge or specs) over rows with the api or offline backend
judge.py        step 1's prompt and answer parsing (kbpipe.steps.filter.rating runs it over a table)
specs.py        step 2's prompt, answer parsing and training-prompt assembly
offline/        rules over the PyTorch code (rules.py, codefeatures.py, torchops.py): no network
cliargs.py      the command-line options both steps share
(kbpipe.testing.openai_server is the local OpenAI-compatible server with faults
that the tests and benchmarks use.)
"""
