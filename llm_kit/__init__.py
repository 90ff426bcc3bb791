"""The kit's own tooling (not imported by notebooks): the offline model server, the workshop
launcher, nbgrader wrappers and the `llm-kit` command. Notebooks import `helpers` instead."""
