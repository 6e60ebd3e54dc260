module github.com/konfig/konfig/sdks/go

go 1.19
