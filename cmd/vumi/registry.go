package main

import (
	"github.com/vumi-kafka/vumi/connectors/airtel"
	"github.com/vumi-kafka/vumi/connectors/apposit"
	"github.com/vumi-kafka/vumi/connectors/archive"
	"github.com/vumi-kafka/vumi/connectors/cellulant"
	"github.com/vumi-kafka/vumi/connectors/cellulantsms"
	"github.com/vumi-kafka/vumi/connectors/devnull"
	"github.com/vumi-kafka/vumi/connectors/dmark"
	"github.com/vumi-kafka/vumi/connectors/graphite"
	"github.com/vumi-kafka/vumi/connectors/httpapi"
	"github.com/vumi-kafka/vumi/connectors/imimobile"
	"github.com/vumi-kafka/vumi/connectors/infobip"
	"github.com/vumi-kafka/vumi/connectors/integrat"
	"github.com/vumi-kafka/vumi/connectors/irc"
	"github.com/vumi-kafka/vumi/connectors/mediaedgegsm"
	"github.com/vumi-kafka/vumi/connectors/mediafonemc"
	"github.com/vumi-kafka/vumi/connectors/mtechkenya"
	"github.com/vumi-kafka/vumi/connectors/mtechussd"
	"github.com/vumi-kafka/vumi/connectors/mtnnigeria"
	"github.com/vumi-kafka/vumi/connectors/mtnrwanda"
	"github.com/vumi-kafka/vumi/connectors/mxit"
	"github.com/vumi-kafka/vumi/connectors/netcore"
	"github.com/vumi-kafka/vumi/connectors/opera"
	"github.com/vumi-kafka/vumi/connectors/parlayx"
	"github.com/vumi-kafka/vumi/connectors/safaricom"
	"github.com/vumi-kafka/vumi/connectors/smpp"
	"github.com/vumi-kafka/vumi/connectors/smpp/smsc"
	"github.com/vumi-kafka/vumi/connectors/smssync"
	"github.com/vumi-kafka/vumi/connectors/telnet"
	"github.com/vumi-kafka/vumi/connectors/trueafrican"
	"github.com/vumi-kafka/vumi/connectors/truteq"
	"github.com/vumi-kafka/vumi/connectors/twitter"
	"github.com/vumi-kafka/vumi/connectors/vas2nets"
	"github.com/vumi-kafka/vumi/connectors/vodacommessaging"
	"github.com/vumi-kafka/vumi/connectors/vumibridge"
	"github.com/vumi-kafka/vumi/connectors/wechat"
	"github.com/vumi-kafka/vumi/connectors/xmpp"
	"github.com/vumi-kafka/vumi/processors/apps/demos"
	"github.com/vumi-kafka/vumi/processors/apps/httprelay"
	"github.com/vumi-kafka/vumi/processors/apps/rapidsms"
	"github.com/vumi-kafka/vumi/processors/apps/sandbox"
	"github.com/vumi-kafka/vumi/processors/apps/scheduler"
	"github.com/vumi-kafka/vumi/processors/apps/sendapi"
	"github.com/vumi-kafka/vumi/processors/apps/words"
	"github.com/vumi-kafka/vumi/processors/failures"
	"github.com/vumi-kafka/vumi/processors/messagestore"
	"github.com/vumi-kafka/vumi/processors/metrics/aggregator"
	"github.com/vumi-kafka/vumi/processors/middleware/builtin"
	"github.com/vumi-kafka/vumi/processors/routers"
	"github.com/vumi-kafka/vumi/topology"
)

// kinds is the binary's registry of worker and middleware kinds, built
// explicitly here rather than by package init side effects.
func kinds() *topology.Registry {
	r := topology.NewRegistry()
	r.Add(telnet.Kinds()...)
	r.Add(irc.Kinds()...)
	r.Add(xmpp.Kinds()...)
	r.Add(twitter.Kinds()...)
	r.Add(devnull.Kind())
	r.Add(httpapi.Kind())
	r.Add(httpapi.OldKinds()...)
	r.Add(smssync.Kinds()...)
	r.Add(infobip.Kind(), vodacommessaging.Kind(), cellulant.Kind(), dmark.Kind(), trueafrican.Kind())
	r.Add(mediafonemc.Kind())
	r.Add(mtechkenya.Kinds()...)
	r.Add(netcore.Kind())
	r.Add(apposit.Kind(), vas2nets.Kind(), cellulantsms.Kind(), mediaedgegsm.Kind())
	r.Add(safaricom.Kind(), airtel.Kind(), imimobile.Kind(), mtechussd.Kind(), mtnrwanda.Kind(), integrat.Kind())
	r.Add(opera.Kind(), parlayx.Kind())
	r.Add(truteq.Kind(), mtnnigeria.Kind())
	r.Add(vumibridge.Kinds()...)
	r.Add(mxit.Kind(), wechat.Kind())
	r.Add(append(smpp.Kinds(), smsc.Kind())...)
	r.Add(words.Kinds()...)
	r.Add(sendapi.Kind())
	r.Add(httprelay.Kind(), rapidsms.Kind(), scheduler.Kind())
	r.Add(sandbox.Kinds()...)
	r.Add(demos.Kinds()...)
	r.Add(failures.Kind())
	r.Add(messagestore.Kind())
	r.Add(routers.Kinds()...)
	r.Add(aggregator.Kind())
	r.Add(graphite.Kind())
	r.Add(archive.Kind())
	r.AddMiddleware(builtin.Kinds()...)
	return r
}
