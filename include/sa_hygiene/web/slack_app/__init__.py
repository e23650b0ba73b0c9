"""The Slack app: act on a digest item or a meeting reminder from Slack itself (issue 13).

One Bolt for Python ``App`` serves three kinds of requests:

- the overflow menu of a DM digest item: "Snooze 7 days" (the alert memory's snooze; the
  message then says who snoozed it until when), "Not mine / wrong Primary SA" (told to the
  item's regional channel and to the operations channel, then snoozed), "Open in Salesforce";
- the "Log it" button of a meeting reminder, which opens a modal offering exactly the
  configured taxonomy, sentiments and persona levels;
- that modal's submission, checked by the expectations of the workflow ``slack.log_form_workflow``
  names, through the engine's own predicates on the row the new Task adds to the activities
  frame (so a handbook change in the YAML changes the form too, and a form is never saved
  with what a digest then flags), and written to Salesforce as a Task.

Since issue 23 the form always completes: Related To is a search (``block_suggestion``) over the
snapshot's open opportunities and accounts, the contact is picked among the attendees and the
account's contacts or created inline, the meeting comes from the snapshot with its changes, and
``/sa <words>`` and ``/sa-create`` reach the same form (and Create contact) from anywhere. Before
acting on a value, the app checks that it sent that item to that person (``sent.py``: the
delivery ledger and the alert state).

Grown by listener kind, as Bolt for Python's app template is: ``listeners/actions.py``
(buttons and menus), ``listeners/views.py`` (modal submissions), ``listeners/suggestions.py``
(searches in a modal's menus) and ``listeners/commands.py`` (slash commands and what their
answers open), each with a ``register(app, backends)``.
Around them: ``app.py`` (building the app, its HTTP route and Socket Mode, credentials),
``backends.py`` (the snapshot, Salesforce, the state database and Slack look-ups the listeners
use), ``items.py`` (what a request may carry), ``people.py`` (who may act), ``log_form.py``
(what the form offers, how it is checked, the Task it makes), ``views.py`` (the modals and
message notes), ``salesforce.py`` (creating the Task).

Security comes before any handler: Bolt's request verification checks every HTTP request's
``v0`` signature and refuses timestamps more than five minutes old (401); the ASGI route
refuses what cannot even be parsed (400), and a middleware refuses payloads that are not
ours (400: unknown action, undecodable value). The clicking Slack user is mapped to a
Salesforce user through the e-mail Slack has for them and the latest snapshot's User table,
and may act only on items addressed to them or to someone who reports to them; anyone else
gets an ephemeral refusal and nothing changes.

Slack wants an answer within three seconds. Every listener acknowledges first and does the
slow part (Slack and Salesforce calls) in a Bolt lazy listener after the answer. A modal's
submission is the one place the answer carries content: validation errors
(``response_action: errors``) are computed before the answer (no I/O), and a valid form is
answered with a "saving" view; the Task is created afterwards and the view updated to the
result. A Salesforce error puts the form back with every typed value and the message. Each
view is claimed once in the state database before a Task is created, so a double submit
creates one Task.

Secrets (bot token, signing secret, app-level token) come from the Slack Airflow connection
or the environment and are never logged.
"""
