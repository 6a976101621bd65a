package emr

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/emr"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/berthhq/berth/internal/config"
)

// The SDK's retries of a throttled or failed call: a few, spaced out up to
// maxBackoff with jitter (the SDK's exponential backoff), after which the
// service's own retry with backoff takes over. The SDK's retry quota is
// off: Berth's limiter already paces the calls, and a quota that runs dry
// would turn a burst of throttling into failures.
const (
	maxAttempts = 4
	maxBackoff  = 20 * time.Second
)

// Clients are the EMR and S3 clients of a pool.
type Clients struct {
	EMR *emr.Client
	S3  *s3.Client
}

// NewClients makes the EMR and S3 clients of spec's region, with
// credentials from AWS's standard chain (environment, shared profile,
// instance role), every attempt of every EMR call drawing on lim. An
// endpoint in the spec (an emulator) serves both EMR and S3, S3 with
// path-style addresses.
//
// load adds to or overrides how the AWS configuration is loaded (tests
// give static credentials).
func NewClients(ctx context.Context, spec *config.EMRSpec, lim *Limiter, load ...func(*awsconfig.LoadOptions) error) (Clients, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, append([]func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(spec.Region),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts, o.MaxBackoff, o.RateLimiter = maxAttempts, maxBackoff, ratelimit.None
			})
		})}, load...)...)
	if err != nil {
		return Clients{}, fmt.Errorf("AWS configuration: %w", err)
	}
	ec := emr.NewFromConfig(cfg, func(o *emr.Options) {
		if spec.Endpoint != "" {
			o.BaseEndpoint = aws.String(spec.Endpoint)
		}
		o.APIOptions = append(o.APIOptions, lim.middleware)
	})
	sc := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if spec.Endpoint != "" {
			o.BaseEndpoint, o.UsePathStyle = aws.String(spec.Endpoint), true
		}
		// EMR's log objects carry no checksum; the SDK would log that it
		// did not check one on every read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	return Clients{EMR: ec, S3: sc}, nil
}

// middleware makes every attempt of a call, retries included, wait for its
// tokens: it sits after the SDK's retry step.
func (l *Limiter) middleware(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("BerthRateLimit",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if err := l.Wait(ctx, middleware.GetOperationName(ctx)); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleFinalize(ctx, in)
		}), "Retry", middleware.After)
}
