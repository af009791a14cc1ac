"""ML2 mechanism driver for tests: binds every port to the first segment it is offered.

Neutron's own `test` mechanism driver asserts on what it is given; without any driver that
binds, Nova's boot fails with PortBindingFailed. No agents run in rocta's test Neutron, so this
driver declares the binding itself (vif type `ovs`, port filtering on) and the port goes ACTIVE.
"""
from neutron_lib.api.definitions import portbindings
from neutron_lib import constants
from neutron_lib.plugins.ml2 import api


class BindEverything(api.MechanismDriver):
    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: True},
                                status=constants.PORT_STATUS_ACTIVE)
            return
