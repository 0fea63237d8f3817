"""Reports for people outside the tool: documents built from the analyses, in business terms
(docs/report.md). The account review is the first: `accountlens report account ID`."""
