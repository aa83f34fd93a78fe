"""The embedded default: everything the scheduler needs, on one machine.

Not shipped to Lambda. `make run` -> `manage.py runlocal` starts a local
DynamoDB/Scheduler server (awsserver), the web app, and a stand-in for
EventBridge Scheduler that fires the schedules (firer).
"""
