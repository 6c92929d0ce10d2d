# Runs SQL for the tests on chdb-core, an in-process modern ClickHouse engine.
# One request per stdin line: {"sql": "...", "data": "..." (optional, appended
# after the statement, e.g. JSONEachRow rows for an INSERT ... FORMAT)}.
# One answer per stdout line: {"ok": "<output>"} or {"error": "<message>"}.
import json
import sys

from chdb import session

db = session.Session(sys.argv[1])
for line in sys.stdin:
    request = json.loads(line)
    sql = request["sql"]
    if request.get("data"):
        sql = sql + "\n" + request["data"]
    try:
        result = db.query(sql)
        answer = {"ok": result.bytes().decode("utf-8")}
    except Exception as err:  # chdb raises its own error type per failed query
        answer = {"error": str(err)}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
