"""The Socket.IO server: authentication, subscriptions and snapshots, ward feeds, the bridge's namespace."""
