"""Translation engines: one interface (`base.Engine`), several implementations."""
