"""Where the data comes from: the Salesforce client, extraction, the changes feed, reading
snapshots into typed frames, the snapshot store. Imports only ``contract``."""
