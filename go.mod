module github.com/wildix-export/wildix-export

go 1.26.8

require (
	github.com/kelseyhightower/envconfig v1.4.0
	github.com/robfig/cron/v3 v3.0.1
	golang.org/x/oauth2 v0.38.0
)
