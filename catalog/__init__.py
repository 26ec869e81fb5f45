"""The resource catalogue (政务信息资源目录) and supply–demand exchange: models, migrations,
workflow, API and the grant compiler that drives Trino's access rules."""
